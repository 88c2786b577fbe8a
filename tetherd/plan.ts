import { cidrContains, formatCIDR, formatIP, ipEqual, networkOf, parseIP, type CIDR, type IP } from '../lib/ip/addr.js';
import type { Peer } from './subnets.js';

/**
 * What one remote node needs on this node, and the kernel operations that move from one such state to
 * another. Pure: the agent computes plans here and dataplane.ts carries them out.
 */
export type Programming =
  /** Flannel's VXLAN triple: neighbour (gateway -> VTEP MAC), FDB (MAC -> underlay IP), onlink route. */
  | { kind: 'vxlan'; subnet: CIDR; gateway: IP; mac: string; remote: IP }
  /** directRouting to a peer on our L2 segment: a plain route via its underlay address. */
  | { kind: 'direct'; subnet: CIDR; via: IP };

export type Op =
  | { op: 'neigh-set' | 'neigh-del'; ip: IP; mac: string }
  | { op: 'fdb-set' | 'fdb-del'; mac: string; remote: IP }
  | { op: 'route-vxlan'; subnet: CIDR; gateway: IP }
  | { op: 'route-direct'; subnet: CIDR; via: IP }
  | { op: 'route-del'; subnet: CIDR };

export interface LocalView {
  /** Our underlay address with its prefix: peers inside it are on our segment. */
  underlay: CIDR;
  directRouting: boolean;
}

export function programmingFor(p: Peer, local: LocalView): Programming | null {
  const remote = parseIP(p.underlayIP);
  if (!remote) return null;
  // A plain IPv4 route needs an IPv4 next hop: over an IPv6 underlay every peer stays on VXLAN.
  if (local.directRouting && remote.family === 4 && local.underlay.ip.family === 4 && cidrContains(local.underlay, remote)) {
    return { kind: 'direct', subnet: p.subnet, via: remote };
  }
  return { kind: 'vxlan', subnet: p.subnet, gateway: networkOf(p.subnet), mac: p.vtepMAC.toLowerCase(), remote };
}

export function samePlan(a: Programming | undefined, b: Programming | undefined): boolean {
  if (!a || !b) return a === b;
  if (a.kind !== b.kind || formatCIDR(a.subnet) !== formatCIDR(b.subnet)) return false;
  if (a.kind === 'direct' && b.kind === 'direct') return ipEqual(a.via, b.via);
  if (a.kind === 'vxlan' && b.kind === 'vxlan') return a.mac === b.mac && ipEqual(a.remote, b.remote) && ipEqual(a.gateway, b.gateway);
  return false;
}

/** Removal: the route first, so nothing is sent on entries that are about to go. */
export function removeOps(p: Programming): Op[] {
  if (p.kind === 'direct') return [{ op: 'route-del', subnet: p.subnet }];
  return [
    { op: 'route-del', subnet: p.subnet },
    { op: 'neigh-del', ip: p.gateway, mac: p.mac },
    { op: 'fdb-del', mac: p.mac, remote: p.remote },
  ];
}

/** Installation: the route last, or the kernel would resolve the gateway before the entries exist. */
export function installOps(p: Programming): Op[] {
  if (p.kind === 'direct') return [{ op: 'route-direct', subnet: p.subnet, via: p.via }];
  return [
    { op: 'neigh-set', ip: p.gateway, mac: p.mac },
    { op: 'fdb-set', mac: p.mac, remote: p.remote },
    { op: 'route-vxlan', subnet: p.subnet, gateway: p.gateway },
  ];
}

/**
 * From what is programmed for a node to what should be: nothing when equal; otherwise the stale
 * entries go before the new ones are added (an FDB entry is keyed by MAC, so a node whose MAC changed
 * would otherwise leave its old MAC pointing at its address for ever, Flannel's stale-FDB bug).
 */
export function transition(from: Programming | undefined, to: Programming | undefined): Op[] {
  if (samePlan(from, to)) return [];
  return [...(from ? removeOps(from) : []), ...(to ? installOps(to) : [])];
}

export function describeOp(o: Op): string {
  switch (o.op) {
    case 'neigh-set': case 'neigh-del': return `${o.op} ${formatIP(o.ip)} lladdr ${o.mac}`;
    case 'fdb-set': case 'fdb-del': return `${o.op} ${o.mac} dst ${formatIP(o.remote)}`;
    case 'route-vxlan': return `route ${formatCIDR(o.subnet)} via ${formatIP(o.gateway)} onlink`;
    case 'route-direct': return `route ${formatCIDR(o.subnet)} via ${formatIP(o.via)} (direct)`;
    case 'route-del': return `route-del ${formatCIDR(o.subnet)}`;
  }
}
