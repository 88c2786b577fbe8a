import { CniError, ErrorCode } from '../cni/errors.js';
import { formatIP, ipEqual, networkCIDR, type CIDR, type Family, type IP } from '../ip/addr.js';
import { AF_INET, AF_INET6, NETLINK_NETFILTER } from '../netlink/constants.js';
import { conntrackDelete, conntrackList } from '../netlink/conntrack.js';
import { NFPROTO_INET } from '../netlink/nftables.js';
import { nftApplySetChanges, nftGetElement, nftListElements, type SetChange, type SetElement } from '../netlink/nft-set.js';
import { Netlink } from '../netlink/handle.js';
import { NetlinkError, NetlinkSocket } from '../netlink/socket.js';
import { sysctlSet } from '../netns/sysctl.js';
import { hostKey, prefixElements, target, wildKey } from './elements.js';
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

function addChanges(planned: Planned[], t: PortTarget, exclusive: boolean): SetChange[] {
  const bySet = new Map<string, SetElement[]>();
  for (const p of planned) bySet.set(p.set, [...(bySet.get(p.set) ?? []), p.element]);
  const changes: SetChange[] = [...bySet].map(([set, elements]) => ({ op: 'add', family: NFPROTO_INET, table: PORTS_TABLE, set, elements, exclusive }));
  return changes;
}

/** The owner of whichever planned key is taken by someone else, for the error. */
function findConflict(sock: NetlinkSocket, planned: Planned[], me: PortOwner): { p: Planned; owner: PortOwner | null } | null {
  for (const p of planned) {
    const e = nftGetElement(sock, NFPROTO_INET, PORTS_TABLE, p.set, p.element.key);
    if (!e) continue;
    const owner = parseOwner(e.comment);
    if (!owner || !sameOwner(owner, me)) return { p, owner };
  }
  return null;
}

/** Adds the container's subnets to the masquerade sets; a prefix already there is fine. */
function addMasqPrefixes(sock: NetlinkSocket, addresses: CIDR[]): void {
  for (const a of addresses) {
    const set = a.ip.family === 4 ? SETS.masq4 : SETS.masq6;
    try {
      nftApplySetChanges(sock, [{ op: 'add', family: NFPROTO_INET, table: PORTS_TABLE, set, elements: prefixElements(networkCIDR(a)) }]);
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
  Netlink.within('/proc/thread-self/ns/net', (nl) => {
    for (const name of ifaces) {
      const link = nl.linkByName(name);
      if (link?.kind === 'veth' && link.master && !link.bridgePort?.hairpin) nl.bridgePortSet(link.index, { hairpin: true });
    }
  });
}

/** Deletes UDP conntrack entries towards the mapped ports, so a client's stale flow does not keep going to the host or an old container. */
function flushUdp(sock: NetlinkSocket, mappings: PortMapping[], families: Set<Family>): number {
  const udp = mappings.filter((m) => m.protocol === 'udp');
  if (!udp.length) return 0;
  let n = 0;
  for (const f of families) {
    const entries = conntrackList(sock, f === 4 ? AF_INET : AF_INET6);
    for (const e of entries) {
      if (e.proto !== PROTOCOL_NUMBER.udp) continue;
      const hit = udp.some((m) => m.hostPort === e.dport && (!m.hostIP || (m.hostIP.family === f && Buffer.from(m.hostIP.bytes).equals(e.dst))));
      if (hit && conntrackDelete(sock, e)) n++;
    }
  }
  return n;
}

/**
 * Publishes the container's ports. All elements go in one transaction: when any hostIP:hostPort/protocol
 * is taken by another container, nothing is added and the CNI error names that container. Adding the
 * same mappings again for the same owner succeeds (an ADD retried by a runtime).
 */
export function addPortMappings(t: PortTarget, mappings: PortMapping[]): { flushed: number } {
  if (!mappings.length) return { flushed: 0 };
  const planned = plan(t, mappings);
  ensurePortsTable();
  return withNetfilter((sock) => {
    try {
      nftApplySetChanges(sock, addChanges(planned, t, true));
    } catch (e) {
      if (!(e instanceof NetlinkError && e.code === 'EEXIST')) throw e;
      const conflict = findConflict(sock, planned, t.owner);
      if (conflict) {
        const who = conflict.owner ? `container ${conflict.owner.containerID} (interface ${conflict.owner.ifname}, network ${conflict.owner.network})` : 'an element without a tether owner';
        throw new CniError(ErrorCode.InvalidNetworkConfig, `host port ${describeMapping(conflict.p.mapping)} (IPv${conflict.p.family}) is already published by ${who}`,
          `hostPort=${conflict.p.mapping.hostPort} protocol=${conflict.p.mapping.protocol}${conflict.p.mapping.hostIP ? ` hostIP=${formatIP(conflict.p.mapping.hostIP)}` : ''}`);
      }
      // Every key is ours already (a retried ADD): put back any of ours that a partial earlier run missed.
      nftApplySetChanges(sock, addChanges(planned, t, false));
    }
    addMasqPrefixes(sock, t.addresses);
    if (mappings.some((m) => !m.hostIP || ipEqual(m.hostIP, LOOPBACK4))) enableRouteLocalnet(t.hostInterfaces ?? []);
    enableHairpin(t.hostInterfaces ?? []);
    return { flushed: flushUdp(sock, mappings, new Set(planned.map((p) => p.family))) };
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

function removeWhere(pred: (o: PortOwner) => boolean): number {
  return withNetfilter((sock) => {
    const doomed = listElements(sock).filter((x) => x.owner && pred(x.owner));
    const bySet = new Map<string, SetElement[]>();
    for (const d of doomed) bySet.set(d.set, [...(bySet.get(d.set) ?? []), { key: d.e.key }]);
    try {
      nftApplySetChanges(sock, [...bySet].map(([set, elements]) => ({ op: 'delete', family: NFPROTO_INET, table: PORTS_TABLE, set, elements })));
    } catch (err) {
      // Someone removed one meanwhile (a concurrent DEL of the same container): remove the rest one by one.
      if (!(err instanceof NetlinkError && err.code === 'ENOENT')) throw err;
      for (const d of doomed) {
        try { nftApplySetChanges(sock, [{ op: 'delete', family: NFPROTO_INET, table: PORTS_TABLE, set: d.set, elements: [{ key: d.e.key }] }]); } catch (e2) {
          if (!(e2 instanceof NetlinkError && e2.code === 'ENOENT')) throw e2;
        }
      }
    }
    return doomed.length;
  });
}

/** Removes every mapping this attachment published (whatever the DEL's config says); 0 when there were none. */
export function removePortMappings(owner: PortOwner): number {
  return removeWhere((o) => sameOwner(o, owner));
}

/** GC: removes the network's mappings whose attachment is not in `keep`. */
export function gcPortMappings(network: string, keep: { containerID: string; ifname: string }[]): number {
  const live = new Set(keep.map((k) => `${k.containerID} ${k.ifname}`));
  return removeWhere((o) => o.network === network && !live.has(`${o.containerID} ${o.ifname}`));
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
