import { CniError, ErrorCode } from '../cni/errors.js';
import { formatIP, ipEqual, networkCIDR, type CIDR, type Family, type IP } from '../ip/addr.js';
import { AF_INET, AF_INET6, NETLINK_NETFILTER } from '../netlink/constants.js';
import { conntrackDelete, conntrackList } from '../netlink/conntrack.js';
import { NFPROTO_INET } from '../netlink/nftables.js';
import { NFT_SET_ELEM_INTERVAL_END, nftApplySetChanges, nftGetElement, nftListElements, prefixElements, type SetChange, type SetElement } from '../netlink/nft-set.js';
import { Netlink } from '../netlink/handle.js';
import { NetlinkError, NetlinkSocket } from '../netlink/socket.js';
import { sysctlSet } from '../netns/sysctl.js';
import { mark } from '../trace.js';
import { hostKey, portKey, target, wildKey } from './elements.js';
import { entryElement, ledgerComment, ledgerEntries, ownerKey, type LedgerEntry } from './ledger.js';
import { describeMapping, PROTOCOL_NUMBER, type PortMapping } from './mapping.js';
import { ensurePortsTable, PORTS_TABLE, SETS } from './ruleset.js';

export { parsePortMappings, describeMapping, type PortMapping, type Protocol } from './mapping.js';
export { PORTS_TABLE } from './ruleset.js';

/**
 * Port mappings of containers, node-wide, in tether's own nftables table (inet tether_ports). Every
 * function acts in the calling thread's network namespace (the host's, for a plugin) and speaks
 * netlink only, except the one-time creation of the table's rules.
 */

/** Who a mapping belongs to: one attachment of one network. Recorded in each element's comment. */
export interface PortOwner {
  network: string;
  containerID: string;
  ifname: string;
}

/** Where a container's mapped ports go. */
export interface PortTarget {
  owner: PortOwner;
  /** The container's addresses with their subnet prefix (a CNI result's ips). The first of each family is the DNAT target. */
  addresses: CIDR[];
  /** Host-side interfaces towards the container (the bridge, the host veth): DNAT of 127.0.0.1 needs route_localnet on them. */
  hostInterfaces?: string[];
}

/** One element as installed, for CHECK, GC and operators. */
export interface InstalledMapping {
  owner: PortOwner;
  hostPort: number;
  protocol: string;
  hostIP?: string;
  family: Family;
  containerIP: string;
  containerPort: number;
}

const ownerComment = (o: PortOwner) => `${o.network} ${o.containerID} ${o.ifname}`;
function parseOwner(comment: string | undefined): PortOwner | null {
  const parts = comment?.split(' ');
  return parts?.length === 3 ? { network: parts[0], containerID: parts[1], ifname: parts[2] } : null;
}
const sameOwner = (a: PortOwner, b: PortOwner) => a.network === b.network && a.containerID === b.containerID && a.ifname === b.ifname;

interface Planned { set: string; family: Family; element: SetElement; mapping: PortMapping }

function plan(t: PortTarget, mappings: PortMapping[]): Planned[] {
  const byFamily = new Map<Family, IP>();
  for (const a of t.addresses) if (!byFamily.has(a.ip.family)) byFamily.set(a.ip.family, a.ip);
  const comment = ownerComment(t.owner);
  const out: Planned[] = [];
  for (const m of mappings) {
    const families: Family[] = m.hostIP ? [m.hostIP.family] : m.wildcardFamily ? [m.wildcardFamily] : [4, 6];
    const usable = families.filter((f) => byFamily.has(f));
    if (!usable.length) {
      throw new CniError(ErrorCode.InvalidNetworkConfig, `port mapping ${describeMapping(m)}: the container has no IPv${families[0]} address to forward it to`,
        `container addresses: ${t.addresses.map((a) => formatIP(a.ip)).join(', ') || 'none'}`);
    }
    for (const f of usable) {
      const data = target(byFamily.get(f)!, m.containerPort);
      const key = m.hostIP ? hostKey(m.hostIP, m.protocol, m.hostPort) : wildKey(m.protocol, m.hostPort);
      const set = m.hostIP ? (f === 4 ? SETS.host4 : SETS.host6) : (f === 4 ? SETS.wild4 : SETS.wild6);
      out.push({ set, family: f, element: { key, data, comment }, mapping: m });
    }
  }
  return out;
}

const withNetfilter = <T>(fn: (sock: NetlinkSocket) => T) => NetlinkSocket.within(NETLINK_NETFILTER, fn);
const claimsOf = (f: Family) => (f === 4 ? SETS.claims4 : SETS.claims6);
const HOST_CLAIM = 'host';
const wildClaim = (o: PortOwner) => `wild ${ownerComment(o)}`;

function ledgerOf(planned: Planned[]): LedgerEntry[] {
  return planned.map((p) => ({ family: p.family, protocol: p.mapping.protocol, hostPort: p.mapping.hostPort, ...(p.mapping.hostIP ? { hostIP: formatIP(p.mapping.hostIP) } : {}) }));
}

/**
 * The ADD's one transaction: its map elements, its claims and its ledger entry (`ledger`, or what
 * `planned` holds), each add exclusive or not.
 */
function addChanges(planned: Planned[], t: PortTarget, exclusive: boolean, ledger?: LedgerEntry[]): SetChange[] {
  const bySet = new Map<string, SetElement[]>();
  const put = (set: string, e: SetElement) => bySet.set(set, [...(bySet.get(set) ?? []), e]);
  for (const p of planned) put(p.set, p.element);
  const changes: SetChange[] = [...bySet].map(([set, elements]) => ({ op: 'add', family: NFPROTO_INET, table: PORTS_TABLE, set, elements, exclusive }));
  // Claims: a wildcard one is the attachment's own (exclusive, so a second owner's add fails); a
  // hostIP one is shared by every hostIP mapping of that port, and only has to stop a wildcard one.
  const claims = new Map<string, { set: string; e: SetElement; wild: boolean }>();
  for (const p of planned) {
    const wild = !p.mapping.hostIP;
    const key = wildKey(p.mapping.protocol, p.mapping.hostPort);
    claims.set(`${p.family} ${key.toString('hex')}`, { set: claimsOf(p.family), e: { key, comment: wild ? wildClaim(t.owner) : HOST_CLAIM }, wild });
  }
  for (const c of claims.values()) changes.push({ op: 'add', family: NFPROTO_INET, table: PORTS_TABLE, set: c.set, elements: [c.e], exclusive: exclusive || undefined });
  changes.push({ op: 'add', family: NFPROTO_INET, table: PORTS_TABLE, set: SETS.owners, elements: [{ key: ownerKey(ownerComment(t.owner)), comment: ledgerComment(ownerComment(t.owner), ledger ?? ledgerOf(planned)) }] });
  return changes;
}

/**
 * The non-exclusive ADD after a benign EEXIST. An existing ledger (a retried ADD) is replaced by the
 * union of its entries and these, in the same transaction: an add would keep the old comment, and a
 * DEL would then miss whatever this ADD added beyond it.
 */
function retryChanges(sock: NetlinkSocket, planned: Planned[], t: PortTarget): SetChange[] {
  const key = ownerKey(ownerComment(t.owner));
  const old = nftGetElement(sock, NFPROTO_INET, PORTS_TABLE, SETS.owners, key);
  if (!old) return addChanges(planned, t, false);
  const before = ledgerEntries(old.comment);
  const mine = ledgerOf(planned);
  const text = (e: LedgerEntry) => `${e.family} ${e.hostIP ?? '*'} ${e.protocol} ${e.hostPort}`;
  // "*" (a DEL scans) covers anything; a ledger that already names every entry stays as it is.
  if (!before) return addChanges(planned, t, false);
  const union = [...before, ...mine.filter((e) => !before.some((b) => text(b) === text(e)))];
  if (union.length === before.length) return addChanges(planned, t, false);
  return [{ op: 'delete', family: NFPROTO_INET, table: PORTS_TABLE, set: SETS.owners, elements: [{ key }] }, ...addChanges(planned, t, false, union)];
}

type Conflict = { p: Planned; owner: PortOwner | null; how: string };

/** The host elements of one protocol . port and family (a scan of one map: only on a conflict, never on the common path). */
function hostElementsOf(sock: NetlinkSocket, family: Family, p: PortMapping): { e: SetElement; owner: PortOwner | null }[] {
  const set = family === 4 ? SETS.host4 : SETS.host6;
  const tail = wildKey(p.protocol, p.hostPort);
  return nftListElements(sock, NFPROTO_INET, PORTS_TABLE, set).filter((e) => e.key.subarray(e.key.length - tail.length).equals(tail)).map((e) => ({ e, owner: parseOwner(e.comment) }));
}

/** Why the exclusive add failed: a key of another owner, or a claim of the other kind. 'stale' when only a leftover hostIP claim was in the way. */
function findConflict(sock: NetlinkSocket, planned: Planned[], me: PortOwner): Conflict | 'stale' | null {
  let stale = false;
  for (const p of planned) {
    const e = nftGetElement(sock, NFPROTO_INET, PORTS_TABLE, p.set, p.element.key);
    if (e) {
      const owner = parseOwner(e.comment);
      if (!owner || !sameOwner(owner, me)) return { p, owner, how: 'is already published by' };
      continue;
    }
    const claim = nftGetElement(sock, NFPROTO_INET, PORTS_TABLE, claimsOf(p.family), wildKey(p.mapping.protocol, p.mapping.hostPort));
    if (!claim) continue;
    if (p.mapping.hostIP && claim.comment?.startsWith('wild ')) {
      const owner = parseOwner(claim.comment.slice(5));
      if (!owner || !sameOwner(owner, me)) return { p, owner, how: `overlaps ${p.mapping.hostPort}/${p.mapping.protocol} on every IPv${p.family} host address, published by` };
    }
    if (!p.mapping.hostIP && claim.comment === HOST_CLAIM) {
      const holders = hostElementsOf(sock, p.family, p.mapping).filter((h) => !h.owner || !sameOwner(h.owner, me));
      if (holders.length) {
        const ip = formatIP({ family: p.family, bytes: Uint8Array.from(holders[0].e.key.subarray(0, p.family === 4 ? 4 : 16)) });
        return { p, owner: holders[0].owner, how: `overlaps ${p.mapping.hostPort}/${p.mapping.protocol} on ${ip}, published by` };
      }
      // Every hostIP mapping of that port is gone (DEL leaves the shared claim): take the claim away.
      nftApplySetChanges(sock, [{ op: 'delete', family: NFPROTO_INET, table: PORTS_TABLE, set: claimsOf(p.family), elements: [{ key: claim.key }] }]);
      stale = true;
    }
  }
  return stale ? 'stale' : null;
}

function conflictError(c: Conflict): CniError {
  const who = c.owner ? `container ${c.owner.containerID} (interface ${c.owner.ifname}, network ${c.owner.network})` : 'an element without a tether owner';
  const m = c.p.mapping;
  return new CniError(ErrorCode.InvalidNetworkConfig, `host port ${describeMapping(m)} (IPv${c.p.family}) ${c.how} ${who}`,
    `hostPort=${m.hostPort} protocol=${m.protocol}${m.hostIP ? ` hostIP=${formatIP(m.hostIP)}` : ''}`);
}

/** Adds the container's subnets to the masquerade sets; a prefix already there is fine. */
function addMasqPrefixes(sock: NetlinkSocket, addresses: CIDR[]): void {
  for (const a of addresses) {
    const set = a.ip.family === 4 ? SETS.masq4 : SETS.masq6;
    const elements = prefixElements(networkCIDR(a));
    // Present already (every ADD but the subnet's first): looked for first, since a refused add aborts
    // the transaction, and an abort costs the kernel a grace period (~10 ms). A listing, not a get: a
    // get of an IPv6 interval's start misses on this kernel. The set holds one element per subnet.
    const present = nftListElements(sock, NFPROTO_INET, PORTS_TABLE, set);
    if (present.some((e) => e.key.equals(elements[0].key) && !((e.flags ?? 0) & NFT_SET_ELEM_INTERVAL_END))) continue;
    try {
      nftApplySetChanges(sock, [{ op: 'add', family: NFPROTO_INET, table: PORTS_TABLE, set, elements }]);
    } catch (e) {
      // Overlapping with a prefix already present (a wider or narrower subnet): that one already covers it.
      if (!(e instanceof NetlinkError && (e.code === 'EEXIST' || e.code === 'ENOTEMPTY'))) throw e;
    }
  }
}

function enableRouteLocalnet(ifaces: string[]): void {
  for (const name of ifaces) {
    try { sysctlSet(`net/ipv4/conf/${name}/route_localnet`, 1); } catch { /* not an IPv4 interface, or gone: nothing to reach 127.0.0.1 through */ }
  }
}

/**
 * Hairpin on the container's bridge port: where br_netfilter is loaded (bridge-nf-call-iptables=1), the
 * DNAT of a container's packet to its own published port happens in the bridge, which then has to send
 * the frame back out of the port it came in on.
 */
function enableHairpin(ifaces: string[]): void {
  Netlink.within((nl) => {
    for (const name of ifaces) {
      const link = nl.linkByName(name);
      if (link?.kind === 'veth' && link.master && !link.bridgePort?.hairpin) nl.bridgePortSet(link.index, { hairpin: true });
    }
  });
}

/**
 * Deletes the conntrack entries of UDP host ports another container gave up lately and that carried
 * traffic lately: a client that kept sending would otherwise keep reaching the old container's address
 * for as long as it sends. Both conditions are set lookups; only then is the conntrack table walked.
 */
function flushUdp(sock: NetlinkSocket, mappings: PortMapping[], families: Set<Family>): number {
  const inSet = (set: string, port: number) => nftGetElement(sock, NFPROTO_INET, PORTS_TABLE, set, portKey(port)) !== null;
  const udp = mappings.filter((m) => m.protocol === 'udp' && inSet(SETS.udpReleased, m.hostPort) && inSet(SETS.udpActive, m.hostPort));
  if (!udp.length) return 0;
  let n = 0;
  // A dump walks the kernel's whole conntrack hash (~10 ms here, whatever it holds), once per family the
  // UDP mappings use; the kernel sends back only UDP entries (a busy node tracks thousands of others).
  const entries = [...families].flatMap((f) => conntrackList(sock, f === 4 ? AF_INET : AF_INET6, PROTOCOL_NUMBER.udp));
  for (const e of entries) {
    if (e.proto !== PROTOCOL_NUMBER.udp) continue;
    const f: Family = e.family === AF_INET ? 4 : 6;
    if (!families.has(f)) continue;
    const hit = udp.some((m) => m.hostPort === e.dport && (!m.hostIP || (m.hostIP.family === f && Buffer.from(m.hostIP.bytes).equals(e.dst))));
    if (hit && conntrackDelete(sock, e)) n++;
  }
  return n;
}

/**
 * Publishes the container's ports. All elements go in one transaction: when any hostIP:hostPort/protocol
 * is taken by another container, or a mapping on every address and one on a hostIP of the same port
 * would coexist, nothing is added and the CNI error names the owner. Adding the same mappings again for
 * the same owner succeeds (an ADD retried by a runtime).
 */
export function addPortMappings(t: PortTarget, mappings: PortMapping[]): { flushed: number } {
  if (!mappings.length) return { flushed: 0 };
  const planned = plan(t, mappings);
  ensurePortsTable();
  return withNetfilter((sock) => {
    for (let attempt = 0; ; attempt++) {
      try {
        nftApplySetChanges(sock, addChanges(planned, t, true));
        break;
      } catch (e) {
        if (!(e instanceof NetlinkError && e.code === 'EEXIST')) throw e;
        const conflict = findConflict(sock, planned, t.owner);
        if (conflict === 'stale' && attempt === 0) continue;
        if (conflict && conflict !== 'stale') throw conflictError(conflict);
        // Every key is ours already (a retried ADD), or a hostIP claim is shared with another hostIP
        // mapping of the port: add without exclusivity (the map elements were found free or ours).
        nftApplySetChanges(sock, retryChanges(sock, planned, t));
        break;
      }
    }
    mark('ports: elements');
    addMasqPrefixes(sock, t.addresses);
    if (mappings.some((m) => !m.hostIP || ipEqual(m.hostIP, LOOPBACK4))) enableRouteLocalnet(t.hostInterfaces ?? []);
    enableHairpin(t.hostInterfaces ?? []);
    mark('ports: masq, localnet, hairpin');
    return { flushed: flushUdp(sock, mappings, new Set(planned.filter((p) => p.mapping.protocol === 'udp').map((p) => p.family))) };
  });
}

const LOOPBACK4: IP = { family: 4, bytes: Uint8Array.of(127, 0, 0, 1) };

/** What CHECK finds wrong with the container's published ports (empty when all are in place). */
export function checkPortMappings(t: PortTarget, mappings: PortMapping[]): string[] {
  if (!mappings.length) return [];
  const planned = plan(t, mappings);
  return withNetfilter((sock) => {
    const problems: string[] = [];
    for (const p of planned) {
      let e: SetElement | null;
      try { e = nftGetElement(sock, NFPROTO_INET, PORTS_TABLE, p.set, p.element.key); } catch (err) {
        if (err instanceof NetlinkError && err.code === 'ENOENT') e = null; else throw err;
      }
      const what = `port mapping ${describeMapping(p.mapping)} (IPv${p.family})`;
      if (!e) problems.push(`${what} is not published`);
      else if (!parseOwner(e.comment) || !sameOwner(parseOwner(e.comment)!, t.owner)) problems.push(`${what} is published by ${e.comment ?? 'someone else'}`);
      else if (!e.data || !e.data.equals(p.element.data!)) problems.push(`${what} forwards somewhere else than ${p.element.data?.toString('hex')}`);
    }
    return problems;
  });
}

const MAPS = [SETS.wild4, SETS.wild6, SETS.host4, SETS.host6];

/** The host port of a map element's key when its protocol is UDP, else null. */
function keyPort(set: string, key: Buffer): number | null {
  const k = set.startsWith('host') ? key.subarray(set.endsWith('4') ? 4 : 16) : key;
  return k[0] === PROTOCOL_NUMBER.udp ? k.readUInt16BE(4) : null;
}

function listElements(sock: NetlinkSocket): { set: string; e: SetElement; owner: PortOwner | null }[] {
  const out: { set: string; e: SetElement; owner: PortOwner | null }[] = [];
  for (const set of MAPS) {
    let elements: SetElement[];
    try { elements = nftListElements(sock, NFPROTO_INET, PORTS_TABLE, set); } catch (err) {
      if (err instanceof NetlinkError && err.code === 'ENOENT') return []; // no table: nothing was ever published
      throw err;
    }
    for (const e of elements) out.push({ set, e, owner: parseOwner(e.comment) });
  }
  return out;
}

type Doomed = { set: string; key: Buffer };

/** Deletes elements (and the owners' ledger entries and wildcard claims), recording the UDP ports given up. */
function removeElements(sock: NetlinkSocket, doomed: Doomed[], owners: PortOwner[]): void {
  const extra: Doomed[] = [];
  for (const d of doomed) {
    // A wildcard element's claim goes with it; a hostIP claim is shared and left for the next wildcard ADD to clear.
    if (d.set.startsWith('wild')) extra.push({ set: d.set.endsWith('4') ? SETS.claims4 : SETS.claims6, key: d.key });
  }
  for (const o of owners) extra.push({ set: SETS.owners, key: ownerKey(ownerComment(o)) });
  const udpPorts = [...new Set(doomed.map((d) => keyPort(d.set, d.key)).filter((p): p is number => p !== null))];
  // The UDP ports given up, so the next container to publish one flushes the flows still going here.
  if (udpPorts.length) nftApplySetChanges(sock, [{ op: 'add', family: NFPROTO_INET, table: PORTS_TABLE, set: SETS.udpReleased, elements: udpPorts.map((p) => ({ key: portKey(p) })) }]);
  const all = [...doomed, ...extra];
  const bySet = new Map<string, SetElement[]>();
  for (const d of all) bySet.set(d.set, [...(bySet.get(d.set) ?? []), { key: d.key }]);
  try {
    nftApplySetChanges(sock, [...bySet].map(([set, elements]) => ({ op: 'delete', family: NFPROTO_INET, table: PORTS_TABLE, set, elements })));
  } catch (err) {
    // Someone removed one meanwhile (a concurrent DEL of the same container): remove the rest one by one.
    if (!(err instanceof NetlinkError && err.code === 'ENOENT')) throw err;
    for (const d of all) {
      try { nftApplySetChanges(sock, [{ op: 'delete', family: NFPROTO_INET, table: PORTS_TABLE, set: d.set, elements: [{ key: d.key }] }]); } catch (e2) {
        if (!(e2 instanceof NetlinkError && e2.code === 'ENOENT')) throw e2;
      }
    }
  }
}

/** Removes, after a scan of the four maps, the elements of every owner `pred` picks (GC; DEL without a readable ledger). */
function removeWhere(sock: NetlinkSocket, pred: (o: PortOwner) => boolean): number {
  const doomed = listElements(sock).filter((x) => x.owner && pred(x.owner));
  const owners = new Map(doomed.map((d) => [ownerComment(d.owner!), d.owner!]));
  if (doomed.length) removeElements(sock, doomed.map((d) => ({ set: d.set, key: d.e.key })), [...owners.values()]);
  return doomed.length;
}

/**
 * Removes every mapping this attachment published (whatever the DEL's config says); 0 when there were
 * none. Its ledger entry names its elements, which are looked up by key: no dump of the maps.
 */
export function removePortMappings(owner: PortOwner): number {
  return withNetfilter((sock) => {
    const ledger = nftGetElement(sock, NFPROTO_INET, PORTS_TABLE, SETS.owners, ownerKey(ownerComment(owner)));
    if (!ledger) return 0; // published nothing (or no table at all)
    const entries = ledgerEntries(ledger.comment);
    if (!entries) return removeWhere(sock, (o) => sameOwner(o, owner));
    const doomed = entries.map(entryElement).filter((d) => {
      const e = nftGetElement(sock, NFPROTO_INET, PORTS_TABLE, d.set, d.key);
      const o = e ? parseOwner(e.comment) : null;
      return o !== null && sameOwner(o, owner); // gone already, or (never) someone else's now
    });
    removeElements(sock, doomed, [owner]);
    return doomed.length;
  });
}

/** GC: removes the network's mappings whose attachment is not in `keep`. */
export function gcPortMappings(network: string, keep: { containerID: string; ifname: string }[]): number {
  const live = new Set(keep.map((k) => `${k.containerID} ${k.ifname}`));
  return withNetfilter((sock) => removeWhere(sock, (o) => o.network === network && !live.has(`${o.containerID} ${o.ifname}`)));
}

function decodeIP(b: Buffer): string { return formatIP({ family: b.length === 4 ? 4 : 6, bytes: Uint8Array.from(b) }); }

/** Every mapping on the node, decoded (for operators, tests and drivers). */
export function listPortMappings(): InstalledMapping[] {
  const protoName = (n: number) => Object.entries(PROTOCOL_NUMBER).find(([, v]) => v === n)?.[0] ?? String(n);
  return withNetfilter((sock) => listElements(sock).flatMap(({ set, e, owner }) => {
    if (!owner || !e.data) return [];
    const family: Family = set.endsWith('4') ? 4 : 6;
    const alen = family === 4 ? 4 : 16;
    const host = set.startsWith('host');
    const k = host ? e.key.subarray(alen) : e.key;
    return [{
      owner, family, protocol: protoName(k[0]), hostPort: k.readUInt16BE(4),
      ...(host ? { hostIP: decodeIP(e.key.subarray(0, alen)) } : {}),
      containerIP: decodeIP(e.data.subarray(0, alen)), containerPort: e.data.readUInt16BE(alen),
    }];
  }));
}
