import { compareIP, parseIP } from '../ip/addr.js';
import type { PeerConfig } from './session.js';

// Who a node peers with, from what the store says about all nodes: a full iBGP mesh by default, or
// only the route reflectors / explicit peers when they are configured. Pure, so tetherd recomputes it
// on every store change and hands the result to Speaker.setPeers().

export interface NodeInfo {
  name: string;
  /** The underlay address the node's speaker listens and connects on. */
  address: string;
  /** Per-node ASN; falls back to the global one. */
  asn?: number;
}

export interface TopologyOptions {
  /** The global ASN (default 64512, Calico's). */
  asn?: number;
  /** Route reflectors by node name: when set, nodes peer only with them instead of the mesh. */
  routeReflectors?: string[];
  /** Explicit peers (outside the cluster, or instead of the mesh when mesh is false). */
  peers?: PeerConfig[];
  /** Full mesh between cluster nodes (default true, unless route reflectors are given). */
  mesh?: boolean;
  /** Applied to every generated peer (timers, graceful restart, max prefix...). */
  defaults?: Partial<PeerConfig>;
}

export const DEFAULT_ASN = 64512;

/**
 * The peers of node `self`. In the mesh each pair has exactly one active side (the lower address
 * connects, the higher one waits), so the two speakers never race into a connection collision.
 */
export function peersFor(self: string, nodes: NodeInfo[], o: TopologyOptions = {}): PeerConfig[] {
  const me = nodes.find((n) => n.name === self);
  if (!me) throw new Error(`node ${self} is not in the node list`);
  const myIp = parseIP(me.address);
  if (!myIp) throw new Error(`node ${self} has an invalid address ${me.address}`);
  const asnOf = (n: NodeInfo) => n.asn ?? o.asn ?? DEFAULT_ASN;
  const rr = new Set(o.routeReflectors ?? []);
  const mesh = o.mesh ?? rr.size === 0;
  let others = nodes.filter((n) => n.name !== self && parseIP(n.address)?.family === myIp.family);
  if (rr.size) {
    // A reflector peers with every node (its clients) and the other reflectors; a client only with reflectors.
    others = rr.has(self) ? others : others.filter((n) => rr.has(n.name));
  } else if (!mesh) {
    others = [];
  }
  const out: PeerConfig[] = others.map((n) => ({
    ...o.defaults,
    address: n.address,
    asn: asnOf(n),
    localAddress: me.address,
    passive: compareIP(myIp, parseIP(n.address)!) > 0,
  }));
  for (const p of o.peers ?? []) if (!out.some((x) => x.address === p.address)) out.push({ ...o.defaults, ...p });
  return out.sort((a, b) => compareIP(parseIP(a.address)!, parseIP(b.address)!));
}
