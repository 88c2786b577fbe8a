import { networkGroup } from '../../lib/netlink/devgroups.js';
import { Netlink } from '../../lib/netlink/handle.js';
import { NETLINK_NETFILTER } from '../../lib/netlink/constants.js';
import { NFPROTO_INET, nftGetTable } from '../../lib/netlink/nftables.js';
import { NFT_SET_ELEM_INTERVAL_END, nftApplySetChanges, nftGetElement, nftListElements, prefixElements, type SetChange, type SetElement } from '../../lib/netlink/nft-set.js';
import { cidrsOverlap, formatCIDR, formatIP, ipFromBytes, lastOf, networkOf, parseCIDR, type CIDR } from '../../lib/ip/addr.js';
import { NetlinkError, NetlinkSocket } from '../../lib/netlink/socket.js';
import { runNftScript } from '../../lib/nft-script.js';

// Isolation between tether networks, node-wide: one table whose forward rules never change; each
// network is a device group number (IFLA_GROUP), and its settings are set elements keyed on it. A
// bridge network's group is on its bridge; a routed network (tether-bgp-route: one host veth per
// container, no bridge) puts its group on each of its host veths. So the rules see a network, whatever
// plugin made it: routed traffic between two isolated networks is refused (ICMP administratively
// prohibited, so a sender learns at once) unless it was DNATed to a published port (those answer from
// anywhere), or one of the networks allows the other; an internal network exchanges nothing with any
// other device; with icc off, nothing is routed from a bridge back to itself (bridged traffic between
// its ports is stopped by port isolation).
//
// A network across hosts (a Docker -o mode=bgp or -o mode=vxlan network) also names its IPv4 subnets
// ("spans"): traffic that comes from or goes to another host carries no device group, so there the
// addresses say which network it is. Such traffic between an isolated network here and the subnet of
// another spanning network known here is refused as above, unless the pair is allowed; an internal
// network exchanges traffic with its own subnet on the other hosts and nothing else. A spanning network
// with no member on this node is known here too, as a foreign span (syncForeignSpans): its subnet in
// "spanned" and its allowed pairs in "spanpeers", no group and no "own" element.

export const ISOLATION_TABLE = 'tether_isolation';
/** Bumped whenever the rules change, so a node with an older table is noticed rather than half-served. */
const COMMENT = 'tether network isolation, rules v3';

/** A network as the isolation rules know it. */
export type IsolationMember = { bridge: string } | { routed: string };

export interface IsolationSettings {
  member: IsolationMember;
  /** false: this network takes no part (it opted out with "isolation": "none"). */
  isolate: boolean;
  internal: boolean;
  icc: boolean;
  /** Bridges of other (bridge) networks this one exchanges traffic with, both ways. */
  allowBridges: string[];
  /** Names of routed (tether-bgp-route) networks this one exchanges traffic with, both ways. */
  allowNetworks: string[];
  /** IPv4 subnets of a network that spans hosts (its addresses on every host); absent for a network of one node. */
  spans?: string[];
}

/** The device group of a network: a hash of its bridge's name, or of a routed network's name (lib/netlink/devgroups.ts). */
export function isolationGroup(m: IsolationMember): number {
  const text = 'bridge' in m ? `bridge ${m.bridge}` : `routed ${m.routed}`;
  let h = 0x811c9dc5;
  for (const b of Buffer.from(text)) h = Math.imul(h ^ b, 0x01000193) >>> 0;
  return networkGroup(h);
}

function script(): string {
  const t = ISOLATION_TABLE;
  return `create table inet ${t} { comment "${COMMENT}"; }
table inet ${t} {
  set isolated { type devgroup; }
  set internal { type devgroup; }
  set self { type devgroup . devgroup; }
  set peers { type devgroup . devgroup; }
  set noicc { type devgroup . devgroup; }
  set spanned { type ipv4_addr; flags interval; }
  set own { type ipv4_addr . devgroup; flags interval; }
  set spanpeers { type ipv4_addr . devgroup; flags interval; }
  chain forward {
    type filter hook forward priority filter - 10; policy accept;
    iifgroup . oifgroup @noicc counter reject with icmpx admin-prohibited
    iifgroup @internal iifgroup . oifgroup != @self meta nfproto ipv6 counter reject with icmpx admin-prohibited
    iifgroup @internal iifgroup . oifgroup != @self ip daddr . iifgroup != @own counter reject with icmpx admin-prohibited
    oifgroup @internal iifgroup . oifgroup != @self meta nfproto ipv6 counter reject with icmpx admin-prohibited
    oifgroup @internal iifgroup . oifgroup != @self ip saddr . oifgroup != @own counter reject with icmpx admin-prohibited
    iifgroup @isolated oifgroup @isolated iifgroup . oifgroup != @self iifgroup . oifgroup != @peers ct status & dnat == 0 counter reject with icmpx admin-prohibited
    oifgroup @isolated iifgroup . oifgroup != @peers ip saddr @spanned ip saddr . oifgroup != @own ip saddr . oifgroup != @spanpeers ct status & dnat == 0 counter reject with icmpx admin-prohibited
    iifgroup @isolated iifgroup . oifgroup != @peers ip daddr @spanned ip daddr . iifgroup != @own ip daddr . iifgroup != @spanpeers ct status & dnat == 0 counter reject with icmpx admin-prohibited
  }
}
`;
}

function ensureTable(): void {
  const check = () => {
    const t = nftGetTable(NFPROTO_INET, ISOLATION_TABLE);
    if (t && t.comment !== COMMENT) {
      throw new Error(`nftables table inet ${ISOLATION_TABLE} exists with comment ${JSON.stringify(t.comment ?? '')}, not ${JSON.stringify(COMMENT)}: it was written by another tether version; delete it (nft delete table inet ${ISOLATION_TABLE}) and ADD again`);
    }
    return t !== null;
  };
  if (check()) return;
  try { runNftScript(script(), 'isolation', ISOLATION_TABLE); } catch (e) {
    if (!check()) throw e; // else another ADD made it first
  }
}

/** A devgroup key: the group number as the kernel's meta expression loads it (host byte order). */
function group(g: number): Buffer { return Buffer.from(new Uint32Array([g]).buffer); }
const pair = (a: number, b: number) => Buffer.concat([group(a), group(b)]);

const change = (op: 'add' | 'delete', set: string, keys: Buffer[]): SetChange => ({ op, family: NFPROTO_INET, table: ISOLATION_TABLE, set, elements: keys.map((key) => ({ key })) });

/** Puts the network's group on the device that carries its traffic on the host (the bridge, or a routed container's host veth). */
export function tagIsolationDevice(member: IsolationMember, name: string): void { tagDevice(name, isolationGroup(member)); }

function tagDevice(name: string, g: number): void {
  Netlink.within((nl) => {
    const link = nl.linkByName(name);
    if (!link) throw new Error(`isolation: device ${name} not found`);
    if (link.group !== g) nl.linkSet(link.index, { group: g });
  });
}

/** A devgroup in a concatenated interval set: nftables keeps range fields in network byte order (the rule converts). */
function rangeGroup(g: number): Buffer { const b = Buffer.alloc(4); b.writeUInt32BE(g); return b; }
/** A subnet . group element of a concatenated interval set ("own", "spanpeers"): first and last address, each with the group. */
const subnetOf = (c: CIDR, g: number): SetElement => ({ key: Buffer.concat([Buffer.from(networkOf(c).bytes), rangeGroup(g)]), keyEnd: Buffer.concat([Buffer.from(lastOf(c).bytes), rangeGroup(g)]) });
const spansOf = (s: IsolationSettings): CIDR[] => (s.spans ?? []).map((x) => parseCIDR(x)!).filter((c) => c.ip.family === 4);
const allowedGroups = (s: IsolationSettings) => [...s.allowBridges.map((bridge) => isolationGroup({ bridge })), ...s.allowNetworks.map((routed) => isolationGroup({ routed }))];

/**
 * Brings the network's elements in line with its settings (a few element changes, no rules) and tags
 * `device` with its group: the bridge (by default) or a routed container's host veth.
 */
export function ensureIsolation(s: IsolationSettings, device = 'bridge' in s.member ? s.member.bridge : undefined): void {
  if (!s.isolate && !s.internal && s.icc) {
    if (!nftGetTable(NFPROTO_INET, ISOLATION_TABLE)) return; // nothing to take part in, nothing to leave
  } else ensureTable();
  const g = isolationGroup(s.member);
  if (device) tagDevice(device, g);
  const others = allowedGroups(s);
  const spans = spansOf(s);
  NetlinkSocket.within(NETLINK_NETFILTER, (sock) => {
    const want: SetChange[] = [];
    const drop: SetChange[] = [];
    (s.isolate ? want : drop).push(change('add', 'isolated', [group(g)]));
    want.push(change('add', 'self', [pair(g, g)]));
    if (others.length) want.push(change('add', 'peers', others.flatMap((o) => [pair(g, o), pair(o, g)])));
    (s.internal ? want : drop).push(change('add', 'internal', [group(g)]));
    (s.icc ? drop : want).push(change('add', 'noicc', [pair(g, g)]));
    if (spans.length) {
      // The network's own subnet on the other hosts; traffic between it and an allowed network here.
      want.push({ ...change('add', 'spanned', []), elements: spans.flatMap(prefixElements) });
      want.push({ ...change('add', 'own', []), elements: spans.map((c) => subnetOf(c, g)) });
      if (others.length) want.push({ ...change('add', 'spanpeers', []), elements: spans.flatMap((c) => others.map((o) => subnetOf(c, o))) });
    }
    nftApplySetChanges(sock, want);
    // Settings turned off since an earlier ADD. Looked up first: deleting an absent element aborts the
    // transaction, and an abort costs the kernel a grace period (~10 ms), a lookup almost nothing.
    const present = drop.filter((d) => nftGetElement(sock, NFPROTO_INET, ISOLATION_TABLE, d.set, d.elements[0].key) !== null);
    if (present.length) nftApplySetChanges(sock, present.map((d) => ({ ...d, op: 'delete' as const })));
  });
}

/**
 * Takes a network out of isolation when it is gone (Docker's network rm; CNI never removes a
 * network): its elements go, one by one, since deleting an absent element fails the batch; so do the
 * pairs that name it (allowed either way) and, for a network across hosts, its subnets' elements.
 */
export function removeIsolation(member: IsolationMember, spans: string[] = []): void {
  if (!nftGetTable(NFPROTO_INET, ISOLATION_TABLE)) return;
  const g = isolationGroup(member);
  const subnets = spansOf({ spans } as IsolationSettings);
  NetlinkSocket.within(NETLINK_NETFILTER, (sock) => {
    const list = (set: string) => nftListElements(sock, NFPROTO_INET, ISOLATION_TABLE, set);
    const groupAt = (key: Buffer, at: number) => key.subarray(at, at + 4).equals(group(g));
    const mine = (key: Buffer) => subnets.some((c) => key.subarray(0, 4).equals(Buffer.from(networkOf(c).bytes)));
    const gone: SetChange[] = [
      change('delete', 'isolated', [group(g)]), change('delete', 'self', [pair(g, g)]), change('delete', 'internal', [group(g)]), change('delete', 'noicc', [pair(g, g)]),
      ...list('peers').filter((e) => groupAt(e.key, 0) || groupAt(e.key, 4)).map((e) => change('delete', 'peers', [e.key])),
      // An interval's start and end marker go together (the kernel finds the end by its start).
      ...subnets.map((c) => ({ ...change('delete', 'spanned', []), elements: prefixElements(c) })),
      ...['own', 'spanpeers'].flatMap((set) => list(set).filter((e) => e.key.subarray(4, 8).equals(rangeGroup(g)) || mine(e.key)).map((e) => ({ ...change('delete', set, []), elements: [{ key: e.key, keyEnd: e.keyEnd }] }))),
    ];
    for (const d of gone) {
      try { nftApplySetChanges(sock, [d]); } catch (e) {
        if (!(e instanceof NetlinkError && e.code === 'ENOENT')) throw e;
      }
    }
  });
}

/** A subnet of a network across hosts that has no member on this node, and the networks allowed to exchange traffic with it. */
export interface ForeignSpan { subnet: string; allowed: IsolationMember[] }

/** Two addresses of a concatenated key (subnet . group) or plain key, as one number each, for comparing. */
const addrOf = (key: Buffer) => key.readUInt32BE(0);

/**
 * Brings the foreign spans in line with `foreign`: each subnet in "spanned" and a "spanpeers" element per
 * allowed network, and the elements of spans foreign no longer (their definition gone, or the network
 * now made here) go. The node's own spans (`local`: the subnets of its networks across hosts) are never
 * touched, nor a foreign subnet overlapping one. Only networks across hosts write these two sets, so what
 * is there beyond `local` is foreign; reading it back (not remembering) makes a restarted driver right.
 * Each span is its own transaction: one that cannot be added does not keep the others out (its error is
 * thrown once the rest are done).
 */
export function syncForeignSpans(foreign: ForeignSpan[], local: string[]): void {
  const own = local.map((x) => parseCIDR(x)!).filter((c) => c.ip.family === 4);
  const want = foreign.map((f) => ({ c: parseCIDR(f.subnet)!, groups: f.allowed.map(isolationGroup) }))
    .filter(({ c }) => c.ip.family === 4 && !own.some((o) => cidrsOverlap(o, c)));
  if (!want.length && !nftGetTable(NFPROTO_INET, ISOLATION_TABLE)) return;
  ensureTable();
  const isOwn = (first: number, last: number) => own.some((c) => addrOf(Buffer.from(networkOf(c).bytes)) === first && addrOf(Buffer.from(lastOf(c).bytes)) === last);
  const wanted = (first: number) => want.find(({ c }) => addrOf(Buffer.from(networkOf(c).bytes)) === first);
  const failures: string[] = [];
  NetlinkSocket.within(NETLINK_NETFILTER, (s) => {
    const apply = (what: string, changes: SetChange[]) => {
      try { nftApplySetChanges(s, changes); } catch (e) {
        // ENOENT: already gone (deleting what is absent fails the transaction).
        if (!(e instanceof NetlinkError && e.code === 'ENOENT')) failures.push(`${what}: ${(e as Error).message}`);
      }
    };
    const list = (set: string) => nftListElements(s, NFPROTO_INET, ISOLATION_TABLE, set);
    // "spanned" lists interval starts and end markers apart; intervals never overlap, so a start's end is
    // the first end marker after it (none: the span reaches 255.255.255.255).
    const spanned = list('spanned');
    const ends = spanned.filter((e) => (e.flags ?? 0) & NFT_SET_ELEM_INTERVAL_END).map((e) => e.key).sort((a, b) => addrOf(a) - addrOf(b));
    for (const start of spanned.filter((e) => !((e.flags ?? 0) & NFT_SET_ELEM_INTERVAL_END))) {
      const first = addrOf(start.key);
      const end = ends.find((k) => addrOf(k) > first);
      const last = end ? addrOf(end) - 1 : 0xffffffff;
      const w = wanted(first);
      if (isOwn(first, last) || (w && addrOf(Buffer.from(lastOf(w.c).bytes)) === last)) continue;
      apply(`foreign span from ${formatIP(ipFromBytes(start.key.subarray(0, 4)))} out of "spanned"`,
        [{ ...change('delete', 'spanned', []), elements: [{ key: start.key }, ...(end ? [{ key: end, flags: NFT_SET_ELEM_INTERVAL_END }] : [])] }]);
    }
    for (const e of list('spanpeers')) {
      const first = addrOf(e.key);
      const last = e.keyEnd ? addrOf(e.keyEnd) : first;
      if (isOwn(first, last)) continue;
      const w = wanted(first);
      if (w && addrOf(Buffer.from(lastOf(w.c).bytes)) === last && w.groups.some((g) => e.key.subarray(4, 8).equals(rangeGroup(g)))) continue;
      apply('a foreign span\'s pair out of "spanpeers"', [{ ...change('delete', 'spanpeers', []), elements: [{ key: e.key, keyEnd: e.keyEnd }] }]);
    }
    for (const { c, groups } of want) {
      apply(`foreign span ${formatCIDR(c)}`, [
        { ...change('add', 'spanned', []), elements: prefixElements(c) },
        { ...change('add', 'spanpeers', []), elements: groups.map((g) => subnetOf(c, g)) },
      ]);
    }
  });
  if (failures.length) throw new Error(`isolation: ${failures.join('; ')}`);
}

/** What CHECK finds wrong with a network's isolation on `device` (its bridge, or a routed container's host veth). */
export function isolationProblems(s: IsolationSettings, device: { name: string; group?: number }): string[] {
  if (!s.isolate && !s.internal && s.icc) return [];
  if (!nftGetTable(NFPROTO_INET, ISOLATION_TABLE)) return [`the isolation table inet ${ISOLATION_TABLE} is missing`];
  const g = isolationGroup(s.member);
  const problems: string[] = [];
  if ((device.group ?? 0) !== g) problems.push(`${device.name} is in device group ${device.group ?? 0}, not the network's isolation group ${g}`);
  NetlinkSocket.within(NETLINK_NETFILTER, (sock) => {
    const has = (set: string, key: Buffer) => nftGetElement(sock, NFPROTO_INET, ISOLATION_TABLE, set, key) !== null;
    if (s.isolate && !has('isolated', group(g))) problems.push(`the network's group ${g} is missing from the isolation set "isolated"`);
    if (!has('self', pair(g, g))) problems.push(`the network's group ${g} is missing from the isolation set "self"`);
    if (s.internal && !has('internal', group(g))) problems.push(`the network's group ${g} is missing from the isolation set "internal"`);
    if (!s.icc && !has('noicc', pair(g, g))) problems.push(`the network's group ${g} is missing from the isolation set "noicc"`);
    const spans = spansOf(s);
    const own = spans.length ? nftListElements(sock, NFPROTO_INET, ISOLATION_TABLE, 'own') : [];
    for (const c of spans) {
      const want = subnetOf(c, g);
      if (!own.some((e) => e.key.equals(want.key) && e.keyEnd?.equals(want.keyEnd!))) problems.push(`the network's subnet ${formatCIDR(c)} with its group ${g} is missing from the isolation set "own"`);
    }
  });
  return problems;
}
