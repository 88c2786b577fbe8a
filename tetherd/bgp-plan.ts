import { blockRecordProblem, recordCidr, type BlockRecord } from '../ipam/blocks.js';
import { peersFor, type NodeInfo, type PeerConfig } from '../lib/bgp/index.js';
import { cidrContains, formatCIDR, parseIP, type CIDR } from '../lib/ip/addr.js';
import type { BgpAgentConfig } from './bgp-config.js';

/**
 * The pure half of tetherd's BGP mode: which prefixes this node announces, given the IPAM blocks and
 * its own pod routes, and which peers it has, given the registered nodes. The agent feeds in what the
 * store and the kernel say and hands the results to the speaker.
 */

/** A node's record in the store: <etcd.prefix>/bgp/<network>/nodes/<name>, under the node's lease. */
export interface BgpNodeRecord {
  node: string;
  underlayIP: string;
  asn: number;
  routerId: string;
  backend: 'bgp';
}

export const NODES = 'nodes/';
export const nodeKey = (name: string) => `${NODES}${name}`;
export const BLOCKS = 'block/';

export function parseNodeRecord(value: string): BgpNodeRecord | null {
  try {
    const r = JSON.parse(value) as BgpNodeRecord;
    if (typeof r.node !== 'string' || typeof r.underlayIP !== 'string' || !parseIP(r.underlayIP) || !Number.isInteger(r.asn)) return null;
    return r;
  } catch { return null; }
}

/** A block of the pod network and the node it has affinity to. */
export interface Block { cidr: CIDR; node: string }

/** The block in a stored IPAM value, or null for anything that is not a block record. */
export function parseBlock(value: string): Block | null {
  let v: unknown;
  try { v = JSON.parse(value); } catch { return null; }
  if (blockRecordProblem(v)) return null;
  const r = v as BlockRecord;
  return { cidr: recordCidr(r), node: r.node };
}

export interface Announcement { prefix: CIDR; blackhole: boolean }

/**
 * What the node announces: each block with affinity to it, as one aggregate blackholed here (its
 * unused addresses end on this node); and each local pod address (a RTPROT_TETHER_POD host route) that lies
 * in none of those blocks, i.e. borrowed from another node's block, as a /32 (/128) with no blackhole.
 * Longest-prefix match does the rest: the block's owner and everyone else route that one address here.
 */
export function planAnnouncements(node: string, blocks: Block[], podRoutes: CIDR[]): Map<string, Announcement> {
  const out = new Map<string, Announcement>();
  const own = blocks.filter((b) => b.node === node);
  for (const b of own) out.set(formatCIDR(b.cidr), { prefix: b.cidr, blackhole: true });
  for (const r of podRoutes) {
    if (r.prefix !== (r.ip.family === 4 ? 32 : 128)) continue;
    if (own.some((b) => cidrContains(b.cidr, r.ip))) continue;
    out.set(formatCIDR(r), { prefix: r, blackhole: false });
  }
  return out;
}

/** From what is announced (prefix -> blackhole) to what should be. */
export function announcementChanges(current: Map<string, boolean>, want: Map<string, Announcement>): { announce: Announcement[]; withdraw: string[] } {
  const announce = [...want.entries()].filter(([k, a]) => current.get(k) !== a.blackhole).map(([, a]) => a);
  const withdraw = [...current.keys()].filter((k) => !want.has(k));
  return { announce, withdraw };
}

/** This node's peers: the mesh of registered nodes (peersFor), or the route reflectors, or the explicit peers. */
export function peersFromTopology(c: BgpAgentConfig, self: NodeInfo, nodes: NodeInfo[]): PeerConfig[] {
  const defaults: Partial<PeerConfig> = { gracefulRestart: c.gracefulRestart, holdTime: c.holdTime, port: c.listen.port, localAddress: self.address };
  if (c.maxPrefix !== undefined) defaults.maxPrefix = c.maxPrefix;
  switch (c.topology.kind) {
    case 'mesh': {
      const all = nodes.some((n) => n.name === self.name) ? nodes : [...nodes, self];
      return peersFor(self.name, all, { asn: c.asn, defaults });
    }
    case 'routeReflectors':
      return c.topology.addresses.filter((a) => a !== self.address).map((address) => ({ ...defaults, address, asn: c.asn }));
    case 'peers':
      return c.topology.peers.map((p) => ({ ...defaults, ...p }));
  }
}
