import type { IsolationMember, IsolationSettings } from '../plugins/common/isolation.js';
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

/** The networks whose settings name `n`, or that `n` names: their elements change when `n` comes or goes. */
export function relatedTo(n: NetworkRecord, all: NetworkRecord[]): NetworkRecord[] {
  const me = named(memberOf(n));
  const mine = new Set([...(n.allowBridges ?? []), ...(n.allowNetworks ?? [])]);
  return all.filter((o) => o.id !== n.id && (mine.has(named(memberOf(o))) || [...(o.allowBridges ?? []), ...(o.allowNetworks ?? [])].includes(me)));
}
