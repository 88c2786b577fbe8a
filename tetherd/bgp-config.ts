import { parseEtcd, type EtcdConfig } from '../ipam/config.js';
import { DEFAULT_ASN, type PeerConfig } from '../lib/bgp/index.js';
import { parseIP } from '../lib/ip/addr.js';
import { absPath, AgentConfigError, bool, int, parseCommon, parseIdentity, type CommonConfig, type Obj } from './config.js';
import { DEFAULT_BGP_STATUS_FILE } from '../lib/paths.js';
import { isPeerStore, parsePeerAgentConfig, type PeerAgentConfig } from './peers/config.js';

/**
 * tetherd in BGP mode (`"mode": "bgp"`): no overlay. The node announces the IPAM blocks it holds and
 * its borrowed pod addresses over BGP and installs what the other nodes announce.
 */
export interface BgpAgentConfig extends Omit<CommonConfig, 'etcd'> {
  mode: 'bgp';
  /** The node registry's etcd; absent with "store": "peers" (nodes and blocks come from the peer agent). */
  etcd?: EtcdConfig;
  /** "store": "peers": the address-space agent's configuration (tetherd/peers). */
  peerStore?: PeerAgentConfig;
  /** This node's AS (published in its node record, so ASNs may differ per node); 64512 by default. */
  asn: number;
  /** BGP identifier; by default the underlay IPv4 address. */
  routerId?: string;
  /** Where the speaker accepts sessions: the underlay address and port 179 by default. */
  listen: { address?: string; port: number };
  /**
   * Who the node peers with: every registered node (iBGP full mesh, the lower address connects), or
   * only these route reflectors (addresses outside the node list, e.g. BIRD), or only explicit peers.
   */
  topology: { kind: 'mesh' } | { kind: 'routeReflectors'; addresses: string[] } | { kind: 'peers'; peers: PeerConfig[] };
  /** A session whose peer announces more prefixes than this ends (Cease/1); none by default. */
  maxPrefix?: number;
  /** Advertise graceful restart and keep a restarting peer's routes for its restart time (default true). */
  gracefulRestart: boolean;
  /** The restart time we advertise (s). */
  restartTime: number;
  holdTime: number;
  /** The pod network's IPAM store (tether-ipam's keys: <etcd.prefix>/ipam/<network>/block/...). */
  ipam: { network: string; etcd?: EtcdConfig };
  statusFile: string;
  /** The node record's lease TTL (s), renewed at a third of it. */
  leaseTTL: number;
  /** How often the node's pod routes (RTPROT_TETHER_POD) are read for borrowed addresses (ms). */
  hostRoutePollMs: number;
  /** How often node records and blocks are listed again under the watch (ms). */
  resyncIntervalMs: number;
  /** After a start, learned routes a previous run left in the kernel are kept until every peer is back, at most this long (ms). */
  restartHoldMs: number;
  /** A node gone (no live record) this long has its IPAM blocks given back to the pool (s; 0: never). tetherd/reclaim.ts. */
  reclaimAfter: number;
  /** How often the reclaimer looks (ms). */
  reclaimIntervalMs: number;
}

function address(v: unknown, field: string): string {
  if (typeof v !== 'string' || !parseIP(v)) throw new AgentConfigError(field, 'must be an IP address', v);
  return v;
}

function topology(c: Obj, asn: number): BgpAgentConfig['topology'] {
  const t = c.topology ?? 'mesh';
  if (c.routeReflectors !== undefined) {
    if (!Array.isArray(c.routeReflectors) || !c.routeReflectors.length) throw new AgentConfigError('routeReflectors', 'must be a non-empty list of addresses', c.routeReflectors);
    return { kind: 'routeReflectors', addresses: c.routeReflectors.map((a, i) => address(a, `routeReflectors[${i}]`)) };
  }
  if (c.peers !== undefined) {
    if (!Array.isArray(c.peers) || !c.peers.length) throw new AgentConfigError('peers', 'must be a non-empty list of {"address", "asn"}', c.peers);
    return {
      kind: 'peers',
      peers: c.peers.map((p, i) => {
        if (typeof p !== 'object' || p === null) throw new AgentConfigError(`peers[${i}]`, 'must be an object with "address"');
        const o = p as Obj;
        return { ...o, address: address(o.address, `peers[${i}].address`), asn: int(o, 'asn', asn, 1, 0xffffffff) } as PeerConfig;
      }),
    };
  }
  if (t !== 'mesh') throw new AgentConfigError('topology', 'must be "mesh" (or give "routeReflectors" or "peers")', t);
  return { kind: 'mesh' };
}

export function parseBgpAgentConfig(o: unknown): BgpAgentConfig {
  if (typeof o !== 'object' || o === null || Array.isArray(o)) throw new AgentConfigError('(top level)', 'must be a JSON object');
  const c = o as Obj;
  if (c.mode !== 'bgp') throw new AgentConfigError('mode', 'must be "bgp"', c.mode);
  // With "store": "peers" the "peers" field is the gossip's, not explicit BGP peers: the topology is the mesh of members (or route reflectors).
  const peerStore = isPeerStore(c) ? parsePeerAgentConfig(c) : undefined;
  const common = peerStore ? parseIdentity(c) : parseCommon(c);
  const asn = int(c, 'asn', DEFAULT_ASN, 1, 0xffffffff);
  if (c.routerId !== undefined && (typeof c.routerId !== 'string' || parseIP(c.routerId)?.family !== 4)) throw new AgentConfigError('routerId', 'must be an IPv4 address', c.routerId);
  const l = (c.listen ?? {}) as Obj;
  if (typeof l !== 'object') throw new AgentConfigError('listen', 'must be {"address", "port"}', c.listen);
  const ipamRaw = (c.ipam ?? {}) as Obj;
  const ipamNetwork = ipamRaw.network ?? 'tether';
  if (typeof ipamNetwork !== 'string' || !/^[A-Za-z0-9._-]{1,64}$/.test(ipamNetwork)) throw new AgentConfigError('ipam.network', 'must be the pod network\'s name', ipamNetwork);
  let ipamEtcd: EtcdConfig | undefined;
  try { ipamEtcd = parseEtcd(ipamRaw.etcd, 'ipam.etcd'); } catch (e) { throw new AgentConfigError('ipam.etcd', (e as Error).message.replace(/^[^:]*: /, '')); }
  return {
    ...common,
    mode: 'bgp',
    asn,
    routerId: c.routerId as string | undefined,
    listen: { address: l.address === undefined ? undefined : address(l.address, 'listen.address'), port: int(l, 'port', 179, 1, 65535) },
    topology: topology(peerStore ? { ...c, peers: undefined } : c, asn),
    maxPrefix: c.maxPrefix === undefined ? undefined : int(c, 'maxPrefix', 0, 1, 10_000_000),
    gracefulRestart: bool(c, 'gracefulRestart', true),
    restartTime: int(c, 'restartTime', 120, 1, 4095),
    holdTime: int(c, 'holdTime', 90, 3, 65535),
    ipam: { network: ipamNetwork, etcd: ipamEtcd ?? ('etcd' in common ? (common as CommonConfig).etcd : undefined) },
    peerStore,
    statusFile: absPath(c, 'statusFile', DEFAULT_BGP_STATUS_FILE),
    leaseTTL: int(c, 'leaseTTL', 3600, 5, 7 * 86400),
    hostRoutePollMs: int(c, 'hostRoutePollMs', 1000, 50, 60_000),
    resyncIntervalMs: int(c, 'resyncIntervalMs', 60_000, 1000, 86_400_000),
    restartHoldMs: int(c, 'restartHoldMs', 30_000, 0, 600_000),
    reclaimAfter: int(c, 'reclaimAfter', 86_400, 0, 365 * 86_400),
    reclaimIntervalMs: int(c, 'reclaimIntervalMs', 60_000, 100, 86_400_000),
  };
}

