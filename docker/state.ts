import { join } from 'node:path';
import { FileKV } from '../lib/store/file.js';
import type { KV } from '../lib/store/kv.js';

// What the driver must remember across its own restarts and dockerd's: dockerd never replays
// CreateNetwork or CreateEndpoint for a local remote driver, so a network it knows must still be known
// here after tetherd restarts. One embedded KV (the IPAM's store) under the state dir, one key a record.

export const DEFAULT_STATE_DIR = '/var/lib/tether/docker';
export const DEFAULT_SOCKET = '/run/docker/plugins/tether.sock';

export interface NetworkRecord {
  id: string;
  /** Absent: bridge (one host). vxlan: a bridge on tetherd's overlay; bgp: routed /32s, no bridge. */
  mode?: 'vxlan' | 'bgp';
  /** A network across hosts: the overlay's name (the hosts share its definition under it) and this host's name in it. */
  overlay?: { name: string; host: string };
  bridge: string;
  /** Pools with their gateways, as CIDRs (gateway address / pool prefix). */
  ipv4: { pool: string; gateway: string }[];
  ipv6: { pool: string; gateway: string }[];
  mtu?: number;
  internal: boolean;
  /** Masquerade traffic leaving the host (not for --internal, nor with -o masquerade=false). */
  masquerade: boolean;
  /** -o name= of a -o mode=bgp network: the name the hosts share it under (else tetherd's IPAM network's). */
  name?: string;
  /** -o allowNetworks=, -o allowBridges=: routed networks and bridges this one exchanges traffic with (isolation). */
  allowNetworks?: string[];
  allowBridges?: string[];
  /** The user's -o options, as given. */
  options: Record<string, string>;
  createdAt: string;
}

export interface EndpointRecord {
  networkID: string;
  endpointID: string;
  /** The veth end on the bridge, and the end dockerd moves into the sandbox. */
  hostVeth: string;
  sandboxVeth: string;
  addresses: string[];
  mac?: string;
  /** Published ports (-p), as dockerd sent them. */
  ports?: unknown[];
  createdAt: string;
}

export interface PoolRecord {
  id: string;
  addressSpace: string;
  pool: string;
  subPool?: string;
  v6: boolean;
  /** A pool that is tetherd's VXLAN overlay: addresses come from this host's subnet of it (tetherd's node name), in etcd. */
  hostSubnet?: { subnet: string; node: string };
  /**
   * A pool of a -o mode=bgp network (set by its CreateNetwork): /32 addresses from blocks with this host's
   * affinity in tetherd's IPAM store (its "ipam.network"), which tetherd announces.
   */
  routed?: { network: string; node: string };
  /** The gateway address, once dockerd asked for it. */
  gateway?: string;
  createdAt: string;
}

const networkKey = (id: string) => `network/${id}`;
const endpointKey = (nid: string, eid: string) => `endpoint/${nid}/${eid}`;
const poolKey = (id: string) => `pool/${encodeURIComponent(id)}`;

function parse<T>(kv: KV, key: string, value: string): T {
  try { return JSON.parse(value) as T; } catch (e) {
    throw new Error(`driver state ${kv.where}: ${key} is not JSON (${(e as Error).message}); repair or remove it`);
  }
}

/** The driver's records. Writes are unconditional: the server runs one request at a time. */
export class DriverState {
  readonly kv: KV;
  constructor(readonly dir: string) { this.kv = new FileKV(join(dir, 'state')); }

  private async read<T>(key: string): Promise<T | undefined> {
    const e = await this.kv.get(key);
    return e ? parse<T>(this.kv, key, e.value) : undefined;
  }

  private async list<T>(prefix: string): Promise<T[]> {
    return [...(await this.kv.range(prefix))].map(([k, e]) => parse<T>(this.kv, k, e.value));
  }

  private async put(key: string, value: unknown): Promise<void> {
    const e = await this.kv.get(key);
    if (!(await this.kv.txn({ if: [{ key, version: e?.version ?? 0 }], put: [{ key, value: JSON.stringify(value) }] }))) {
      throw new Error(`driver state ${this.kv.where}: ${key} changed while being written (is a second driver using this state dir?)`);
    }
  }

  private async del(key: string): Promise<void> {
    const e = await this.kv.get(key);
    if (e) await this.kv.txn({ if: [{ key, version: e.version }], del: [key] });
  }

  network(id: string) { return this.read<NetworkRecord>(networkKey(id)); }
  networks() { return this.list<NetworkRecord>('network/'); }
  putNetwork(n: NetworkRecord) { return this.put(networkKey(n.id), n); }
  deleteNetwork(id: string) { return this.del(networkKey(id)); }

  endpoint(nid: string, eid: string) { return this.read<EndpointRecord>(endpointKey(nid, eid)); }
  endpoints(nid?: string) { return this.list<EndpointRecord>(nid ? `endpoint/${nid}/` : 'endpoint/'); }
  putEndpoint(e: EndpointRecord) { return this.put(endpointKey(e.networkID, e.endpointID), e); }
  deleteEndpoint(nid: string, eid: string) { return this.del(endpointKey(nid, eid)); }

  pool(id: string) { return this.read<PoolRecord>(poolKey(id)); }
  pools() { return this.list<PoolRecord>('pool/'); }
  putPool(p: PoolRecord) { return this.put(poolKey(p.id), p); }
  deletePool(id: string) { return this.del(poolKey(id)); }
}
