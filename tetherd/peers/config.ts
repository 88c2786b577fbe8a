import { join } from 'node:path';
import { DEFAULT_DATA_DIR } from '../../ipam/config.js';
import { formatCIDR, formatIP, hostBitsZero, networkCIDR, parseCIDR, parseIP, type CIDR } from '../../lib/ip/addr.js';
import { absPath, AgentConfigError, bool, int, parseIdentity, parseVxlanDevice, type CommonConfig, type Obj, type VxlanDeviceConfig } from '../config.js';
import { MAX_BLOCKS } from './wire.js';

/** The gossip port (UDP), on every node's underlay address. */
export const DEFAULT_PEER_PORT = 6784;
export const DEFAULT_PEER_STATE = '/var/lib/tether/peers.json';
export const DEFAULT_KEY_FILE = '/etc/tether/peers.key';

/**
 * tetherd with "store": "peers": no etcd. The agents of a network agree among themselves which node
 * owns which block of the pool (docs/peers.md), and each writes its blocks into the node's embedded
 * IPAM store, where tether-ipam ("agentBlocks": true) allocates from them.
 */
export interface PeerAgentConfig extends Omit<CommonConfig, 'etcd'> {
  pool: CIDR;
  /** Block prefix length: the unit of ownership, and tether-ipam's blockSize (they must match). */
  blockSize: number;
  port: number;
  keyFile: string;
  /** Underlay addresses of the other agents: the first split waits for all of them; later, any one is enough to join through. */
  peers: string[];
  seed: boolean;
  stateFile: string;
  /** The pod network whose embedded store receives the blocks: <dataDir>/<network>. */
  ipam: { network: string; dataDir: string };
  /** A node silent this long may be voted dead (ms). */
  voteSilenceMs: number;
  /** Reclaim a node silent this long without an operator (ms; 0: only `tetherd reclaim`). */
  reclaimAfterMs: number;
  lowWater: number;
  /** Every member is sent our state this often even when nothing changed (ms). */
  gossipIntervalMs: number;
  /** Send times further than this from our clock are refused (ms). */
  replayWindowMs: number;
  /** How often the embedded store is compared with the table (ms). */
  syncIntervalMs: number;
  /**
   * "mode": "vxlan": the VXLAN device (the same fields as VXLAN mode on etcd); each member's VTEP (its
   * underlay address and this device's MAC) travels in the gossip, and every block is routed to its owner's.
   */
  vxlan?: VxlanDeviceConfig & { checkIntervalMs: number };
}

export const isPeerStore = (o: unknown) => (o as Obj | null)?.store === 'peers';

export function parsePeerAgentConfig(o: unknown): PeerAgentConfig {
  if (typeof o !== 'object' || o === null || Array.isArray(o)) throw new AgentConfigError('(top level)', 'must be a JSON object');
  const c = o as Obj;
  if (c.mode !== undefined && c.mode !== 'peers' && c.mode !== 'bgp' && c.mode !== 'vxlan') throw new AgentConfigError('mode', 'with "store": "peers" must be "vxlan" (blocks routed over the VXLAN overlay), "bgp" (pods routed by the BGP speaker) or "peers" (the address space only)', c.mode);
  if (c.etcd !== undefined) throw new AgentConfigError('etcd', 'cannot be given with "store": "peers" (the agents keep no shared store)');
  const id = parseIdentity(c);
  const pool = typeof c.pool === 'string' ? parseCIDR(c.pool) : null;
  if (!pool || pool.ip.family !== 4) throw new AgentConfigError('pool', 'must be an IPv4 CIDR such as "10.244.0.0/16"', c.pool);
  if (!hostBitsZero(pool)) throw new AgentConfigError('pool', `has host bits set; the network address is ${formatCIDR(networkCIDR(pool))}`, c.pool);
  const blockSize = int(c, 'blockSize', 26, pool.prefix, 30);
  if (2 ** (blockSize - pool.prefix) > MAX_BLOCKS) throw new AgentConfigError('blockSize', `cuts ${formatCIDR(pool)} into ${2 ** (blockSize - pool.prefix)} blocks; at most ${MAX_BLOCKS} (use a larger block)`, blockSize);
  const p = (c.peers ?? {}) as Obj;
  if (typeof p !== 'object' || Array.isArray(p)) throw new AgentConfigError('peers', 'must be an object {"addresses": [...], "keyFile": ...}', c.peers);
  const addresses = p.addresses ?? [];
  if (!Array.isArray(addresses) || addresses.some((a) => typeof a !== 'string' || !parseIP(a))) throw new AgentConfigError('peers.addresses', 'must be a list of the other agents\' underlay IP addresses', addresses);
  const seed = bool(p, 'seed', false);
  if (!seed && !addresses.length) throw new AgentConfigError('peers.addresses', 'is empty: list the other agents (all of them for the first split, or any one member to join), or set "seed": true on exactly one node');
  const ipamRaw = (c.ipam ?? {}) as Obj;
  const ipamNetwork = ipamRaw.network ?? 'tether';
  if (typeof ipamNetwork !== 'string' || !/^[A-Za-z0-9._-]{1,64}$/.test(ipamNetwork)) throw new AgentConfigError('ipam.network', 'must be the pod network\'s name (the conflist "name")', ipamNetwork);
  const voteSilenceMs = int(p, 'voteSilence', 60, 1, 30 * 86400) * 1000;
  const reclaimAfterMs = int(p, 'reclaimAfter', 0, 0, 365 * 86400) * 1000;
  if (reclaimAfterMs && reclaimAfterMs < voteSilenceMs) throw new AgentConfigError('peers.reclaimAfter', `must be 0 (never) or at least voteSilence (${voteSilenceMs / 1000} s)`, reclaimAfterMs / 1000);
  return {
    ...id, pool, blockSize,
    port: int(p, 'port', DEFAULT_PEER_PORT, 1, 65535),
    keyFile: absPath(p, 'keyFile', DEFAULT_KEY_FILE),
    peers: [...new Set((addresses as string[]).map((a) => formatIP(parseIP(a)!)))],
    seed,
    stateFile: absPath(p, 'stateFile', DEFAULT_PEER_STATE),
    ipam: { network: ipamNetwork, dataDir: absPath(ipamRaw, 'dataDir', DEFAULT_DATA_DIR) },
    voteSilenceMs,
    reclaimAfterMs,
    lowWater: int(p, 'lowWater', 2, 1, 64),
    gossipIntervalMs: int(p, 'gossipIntervalMs', 1000, 50, 60_000),
    replayWindowMs: int(p, 'replayWindow', 60, 5, 3600) * 1000,
    syncIntervalMs: int(p, 'syncIntervalMs', 100, 20, 10_000),
    ...(c.mode === 'vxlan' ? { vxlan: { ...parseVxlanDevice(c, id.underlayIP), checkIntervalMs: int(c, 'checkIntervalMs', 500, 50, 60_000) } } : {}),
  };
}

export const storeDir = (c: PeerAgentConfig) => join(c.ipam.dataDir, c.ipam.network);
