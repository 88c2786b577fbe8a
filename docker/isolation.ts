import { cidrsOverlap, parseCIDR } from '../lib/ip/addr.js';
import type { ForeignSpan, IsolationMember, IsolationSettings } from '../plugins/common/isolation.js';
import type { SharedNetwork } from './shared.js';
import type { NetworkRecord } from './state.js';

// A Docker network in tether's node-wide isolation (plugins/common/isolation.ts), the same way as
// tether-bridge's and tether-bgp-route's networks: a bridge network is its bridge; a -o mode=bgp network
// is a routed network named as the hosts share it (-o name=, else tetherd's IPAM network, whose CNI
// tether-bgp-route pods are then the same network), its group on each container's host veth.

/** How the isolation rules know the network. */
export function memberOf(n: NetworkRecord): IsolationMember {
  return n.mode === 'bgp' ? { routed: n.overlay?.name ?? n.name ?? n.bridge } : { bridge: n.bridge };
}

const named = (m: IsolationMember) => ('bridge' in m ? m.bridge : m.routed);

/**
 * The network's isolation settings. Allowing is symmetric (one side's -o allowNetworks / allowBridges
 * suffices, as in the CNI plugins): the networks of this host that name this one are allowed too, so
 * that each side of a pair across hosts also carries the pair's subnet elements (see spans).
 */
export function isolationOf(n: NetworkRecord, all: NetworkRecord[]): IsolationSettings {
  const me = memberOf(n);
  const allowBridges = new Set(n.allowBridges ?? []);
  const allowNetworks = new Set(n.allowNetworks ?? []);
  for (const o of all) {
    if (o.id === n.id) continue;
    const names = 'bridge' in me ? o.allowBridges : o.allowNetworks;
    if (!names?.includes(named(me))) continue;
    const them = memberOf(o);
    if ('bridge' in them) allowBridges.add(them.bridge); else allowNetworks.add(them.routed);
  }
  return {
    member: me, isolate: true, internal: n.internal, icc: true, allowBridges: [...allowBridges].sort(), allowNetworks: [...allowNetworks].sort(),
    // A network across hosts: its addresses on the other hosts are its pool (bgp: the --subnet; vxlan: the overlay).
    ...(n.mode ? { spans: n.ipv4.map((p) => p.pool) } : {}),
  };
}

/** The subnets of this host's networks across hosts (their "spanned" and "own" elements are theirs). */
export const localSpans = (all: NetworkRecord[]): string[] => all.flatMap((n) => isolationOf(n, all).spans ?? []);

/**
 * The -o mode=bgp networks defined across hosts that this host has no member of (`across`: the shared
 * store's networks). Their traffic reaches this host's networks from other hosts with nothing but its
 * addresses to tell it, so each one's subnet goes in the isolation table as a foreign span: refused
 * towards and from the isolated networks here, except the networks allowed with it. A pair is allowed by
 * either side's -o allowNetworks, on whichever host it was given (a host without the network knows its
 * allowances only from the store), and a routed network here of the same name (tetherd's CNI pods of a
 * network without -o name=) is the same network. A subnet that overlaps one of this host's own spans is
 * left out: that network's elements decide there.
 */
export function foreignNetworks(local: NetworkRecord[], across: Map<string, SharedNetwork>): (ForeignSpan & { name: string })[] {
  const here = new Set(local.filter((n) => n.mode === 'bgp').map((n) => named(memberOf(n))));
  const mine = localSpans(local).map((s) => parseCIDR(s)!);
  const out: (ForeignSpan & { name: string })[] = [];
  for (const [name, s] of across) {
    if (s.definition.mode !== 'bgp' || here.has(name)) continue;
    const subnet = parseCIDR(s.definition.subnet);
    if (!subnet || subnet.ip.family !== 4 || mine.some((c) => cidrsOverlap(c, subnet))) continue;
    const allowed = new Map<string, IsolationMember>();
    const add = (m: IsolationMember) => allowed.set('bridge' in m ? `bridge ${m.bridge}` : `routed ${m.routed}`, m);
    add({ routed: name });
    for (const a of s.allowNetworks) add({ routed: a });
    for (const [other, o] of across) if (other !== name && o.definition.mode === 'bgp' && o.allowNetworks.includes(name)) add({ routed: other });
    for (const n of local) if (n.allowNetworks?.includes(name)) add(memberOf(n));
    out.push({ name, subnet: s.definition.subnet, allowed: [...allowed.keys()].sort().map((k) => allowed.get(k)!) });
  }
  return out.sort((a, b) => a.name.localeCompare(b.name));
}

/** The networks whose settings name `n`, or that `n` names: their elements change when `n` comes or goes. */
export function relatedTo(n: NetworkRecord, all: NetworkRecord[]): NetworkRecord[] {
  const me = named(memberOf(n));
  const mine = new Set([...(n.allowBridges ?? []), ...(n.allowNetworks ?? [])]);
  return all.filter((o) => o.id !== n.id && (mine.has(named(memberOf(o))) || [...(o.allowBridges ?? []), ...(o.allowNetworks ?? [])].includes(me)));
}
