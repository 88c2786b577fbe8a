import { rmSync } from 'node:fs';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { nodeCrypto } from '../lib/builtin.js';
import { CniError } from '../lib/cni/errors.js';
import {
  addToIP, cidrContains, cidrsOverlap, compareIP, formatCIDR, formatIP, hostBitsZero, ipEqual, lastOf, networkOf, parseCIDR, parseIP, type CIDR, type IP,
} from '../lib/ip/addr.js';
import { Allocator } from '../ipam/allocator.js';
import { parseIpamConfig, type IpamConfig } from '../ipam/config.js';
import { forgetNode } from '../ipam/retire.js';
import { openStore, withStore } from '../ipam/store.js';
import type { EtcdConfig } from '../ipam/config.js';
import type { Overlay } from './overlay.js';
import {
  Label, type AddressSpacesResponse, type IpamCapabilitiesResponse, type PoolRequest, type ReleaseAddressRequest,
  type RequestAddressRequest, type RequestAddressResponse, type RequestPoolRequest, type RequestPoolResponse,
} from './api.js';
import { badRequest, DriverError } from './errors.js';
import type { DriverState, PoolRecord } from './state.js';

// Docker's IpamDriver on tether-ipam's allocator and store. Docker names pools and addresses, never the
// endpoint an address is for, so each address gets an owner of its own ("docker-<random>/eth") and a
// release finds it from the block that holds the address.

export const LOCAL_ADDRESS_SPACE = 'tether';
export const GLOBAL_ADDRESS_SPACE = 'tether-global';
const OWNER_IFNAME = 'eth';
const OWNER_PREFIX = 'docker-';

/** Pools picked when `docker network create` gives no --subnet (Docker's own defaults, as /16s then /20s). */
export function defaultPoolCandidates(): CIDR[] {
  const out: CIDR[] = [];
  for (let b = 18; b <= 31; b++) out.push(parseCIDR(`172.${b}.0.0/16`)!);
  for (let c = 0; c < 256; c += 16) out.push(parseCIDR(`192.168.${c}.0/20`)!);
  return out;
}

export interface IpamOptions {
  stateDir: string;
  nodeName?: string;
  /** Subnets already used on the host (its routes), avoided when picking a pool. */
  hostSubnets?: () => CIDR[];
  /** The store the hosts share: a pool that is tetherd's overlay keeps its addresses there. */
  etcd?: EtcdConfig;
  /** tetherd's VXLAN overlay on this host (throws when tetherd has not published it). */
  overlay?: () => Overlay;
}

const poolID = (space: string, pool: string, sub?: string) => `${space}/${pool}${sub ? `/${sub}` : ''}`;
const storeName = (pool: string) => `docker-${pool.replace(/[/:]/g, '_')}`;

function cidrArg(v: unknown, what: string): CIDR {
  const c = typeof v === 'string' ? parseCIDR(v) : null;
  if (!c) throw badRequest(`tether IPAM: ${what} must be a CIDR such as 10.30.0.0/24, got ${JSON.stringify(v)}`);
  if (!hostBitsZero(c)) throw badRequest(`tether IPAM: ${what} ${v as string} has host bits set; use the network address ${formatCIDR({ ip: networkOf(c), prefix: c.prefix })}`);
  return c;
}

/**
 * Docker's IPAM on tether's allocator and stores. No allocation takes ipam/store.ts's node lock: that lock
 * only spares concurrent allocators on a node each other's retries; this driver's requests already run one
 * at a time (the server's queue), and its lock file lay under its own --state-dir, so it never kept out any
 * other process. Against every other writer (CNI pods and other hosts on a shared etcd) the allocator's
 * conditional transactions keep it correct, with or without the lock.
 */
export class IpamDriver {
  constructor(private readonly state: DriverState, private readonly o: IpamOptions) {}

  capabilities(): IpamCapabilitiesResponse {
    // Pools and gateways are kept on disk, so dockerd need not replay them after its restart.
    return { RequiresMACAddress: false, RequiresRequestReplay: false };
  }

  addressSpaces(): AddressSpacesResponse {
    return { LocalDefaultAddressSpace: LOCAL_ADDRESS_SPACE, GlobalDefaultAddressSpace: GLOBAL_ADDRESS_SPACE };
  }

  /** tether-ipam's config for a pool: the --ip-range for dynamic addresses, the whole subnet for asked ones. */
  private config(p: PoolRecord, dynamic: boolean): IpamConfig {
    if ((p.hostSubnet || p.routed) && !this.o.etcd) {
      throw new DriverError(`tether IPAM: the addresses of pool ${p.pool} are in the store the hosts share, and this plugin's --config names no "etcd"; restart it with the config it made the network with`);
    }
    if (p.hostSubnet) {
      // This host's subnet of the overlay, one block with this host's affinity, in the shared store: the
      // subnet is leased to this host alone, and every host sees which addresses are held.
      const range: Record<string, string> = { subnet: p.hostSubnet.subnet, ...(p.gateway ? { gateway: p.gateway } : {}) };
      return parseIpamConfig({
        cniVersion: '1.1.0', name: storeName(p.pool), type: 'tether-docker',
        ipam: {
          type: 'tether-ipam', ranges: [[range]], dataDir: join(this.o.stateDir, 'ipam'), nodeName: p.hostSubnet.node,
          blockSize: { v4: parseCIDR(p.hostSubnet.subnet)!.prefix, v6: 122 }, strictAffinity: true, etcd: this.o.etcd,
        },
      });
    }
    if (p.routed) {
      // tetherd's IPAM store in BGP mode: blocks claimed with this host's affinity are what tetherd announces.
      return parseIpamConfig({
        cniVersion: '1.1.0', name: p.routed.network, type: 'tether-docker',
        ipam: { type: 'tether-ipam', ranges: [[{ subnet: p.pool, ...(p.gateway ? { gateway: p.gateway } : {}) }]], dataDir: join(this.o.stateDir, 'ipam'), nodeName: p.routed.node, etcd: this.o.etcd },
      });
    }
    const pool = parseCIDR(p.pool)!;
    const range: Record<string, string> = { subnet: p.pool };
    if (p.gateway) range.gateway = p.gateway;
    if (dynamic && p.subPool) {
      const sub = parseCIDR(p.subPool)!;
      const first = addToIP(networkOf(pool), 1)!;
      const last = pool.ip.family === 4 ? addToIP(lastOf(pool), -1)! : lastOf(pool);
      const start = networkOf(sub);
      const end = lastOf(sub);
      range.rangeStart = formatIP(compareIP(start, first) < 0 ? first : start);
      range.rangeEnd = formatIP(compareIP(end, last) > 0 ? last : end);
    }
    return parseIpamConfig({
      cniVersion: '1.1.0', name: storeName(p.pool), type: 'tether-docker',
      ipam: { type: 'tether-ipam', ranges: [[range]], dataDir: join(this.o.stateDir, 'ipam'), nodeName: this.o.nodeName ?? hostname() },
    });
  }

  private async poolOf(id: unknown): Promise<PoolRecord> {
    if (typeof id !== 'string' || !id) throw badRequest(`tether IPAM: PoolID must be a string, got ${JSON.stringify(id)}`);
    const p = await this.state.pool(id);
    if (!p) throw new DriverError(`tether IPAM: no pool ${id} (released already, or made with another state dir)`);
    return p;
  }

  async requestPool(r: RequestPoolRequest): Promise<RequestPoolResponse> {
    const space = r.AddressSpace || LOCAL_ADDRESS_SPACE;
    if (space !== LOCAL_ADDRESS_SPACE && space !== GLOBAL_ADDRESS_SPACE) throw badRequest(`tether IPAM: unknown address space ${JSON.stringify(space)}; tether has "${LOCAL_ADDRESS_SPACE}" and "${GLOBAL_ADDRESS_SPACE}"`);
    const pools = await this.state.pools();
    const taken = pools.map((p) => ({ p, cidr: parseCIDR(p.pool)! }));
    let pool: CIDR;
    if (r.Pool) {
      pool = cidrArg(r.Pool, '--subnet');
      if (r.V6 !== (pool.ip.family === 6)) throw badRequest(`tether IPAM: --subnet ${r.Pool} is IPv${pool.ip.family}, the request is for IPv${r.V6 ? 6 : 4}`);
      const bits = pool.ip.family === 4 ? 32 : 128;
      if (pool.prefix > bits - 2) throw badRequest(`tether IPAM: --subnet ${r.Pool} is too small: a /${bits - 1} or /${bits} leaves no address for containers`);
    } else {
      if (r.SubPool) throw badRequest('tether IPAM: --ip-range needs --subnet');
      if (r.V6) throw badRequest('tether IPAM: an IPv6 network needs its subnet: add --subnet with an IPv6 CIDR such as fd00:1::/64');
      const used = [...taken.map((t) => t.cidr), ...(this.o.hostSubnets?.() ?? [])];
      const free = defaultPoolCandidates().find((c) => !used.some((u) => cidrsOverlap(c, u)));
      if (!free) throw new DriverError('tether IPAM: every default pool (172.18-31.0.0/16, 192.168.0-240.0/20) is in use; give --subnet');
      pool = free;
    }
    let sub: CIDR | undefined;
    if (r.SubPool) {
      sub = cidrArg(r.SubPool, '--ip-range');
      if (!cidrContains(pool, sub.ip) || sub.prefix < pool.prefix) throw badRequest(`tether IPAM: --ip-range ${r.SubPool} is not inside --subnet ${formatCIDR(pool)}`);
    }
    const clash = taken.find((t) => cidrsOverlap(t.cidr, pool));
    if (clash) throw new DriverError(`tether IPAM: subnet ${formatCIDR(pool)} overlaps ${clash.p.pool}, the pool of another network on this host; pick another --subnet or remove that network`);
    const hostSubnet = this.overlayPool(pool, sub);
    const rec: PoolRecord = {
      id: poolID(space, formatCIDR(pool), sub && formatCIDR(sub)), addressSpace: space, pool: formatCIDR(pool), ...(sub ? { subPool: formatCIDR(sub) } : {}),
      ...(hostSubnet ? { hostSubnet } : {}), v6: pool.ip.family === 6, createdAt: new Date().toISOString(),
    };
    await this.state.putPool(rec);
    return { PoolID: rec.id, Pool: rec.pool, Data: {} };
  }

  /**
   * The --subnet that is tetherd's VXLAN pool is the overlay (a network with -o mode=vxlan: dockerd asks
   * for the pool before it tells the network driver the mode): this host's part of it.
   */
  private overlayPool(pool: CIDR, sub: CIDR | undefined): PoolRecord['hostSubnet'] {
    if (!this.o.overlay || !this.o.etcd) return undefined;
    let ov: Overlay;
    try { ov = this.o.overlay(); } catch { return undefined; }
    if (formatCIDR(pool) !== ov.pool) return undefined;
    if (sub) throw badRequest(`tether IPAM: --ip-range does not apply to tetherd's overlay pool ${ov.pool}: each host's containers get addresses of its own subnet (${ov.subnet} here)`);
    return { subnet: ov.subnet, node: ov.node };
  }

  async releasePool(r: PoolRequest): Promise<Record<string, never>> {
    if (typeof r.PoolID !== 'string') throw badRequest('tether IPAM: PoolID must be a string');
    const p = await this.state.pool(r.PoolID);
    if (!p) return {};
    await this.state.deletePool(p.id);
    if (p.hostSubnet) {
      // The shared store: this host's block goes back (and any address a lost release left in it).
      const cfg = this.config(p, false);
      const kv = openStore(cfg);
      await withStore(kv, () => forgetNode(kv, p.hostSubnet!.node));
    }
    // Docker releases every address before the pool; what is left of the embedded store goes with it.
    rmSync(join(this.o.stateDir, 'ipam', storeName(p.pool)), { recursive: true, force: true });
    return {};
  }

  async requestAddress(r: RequestAddressRequest): Promise<RequestAddressResponse> {
    const p = await this.poolOf(r.PoolID);
    // An overlay pool: this host's subnet is what its containers are on (with a route to the pool).
    const pool = p.hostSubnet ? parseCIDR(p.hostSubnet.subnet)! : parseCIDR(p.pool)!;
    const gatewayAsked = r.Options?.[Label.requestAddressType] === Label.gatewayType;
    let asked: IP | undefined;
    if (r.Address) {
      asked = parseIP(r.Address) ?? undefined;
      if (!asked) throw badRequest(`tether IPAM: ${JSON.stringify(r.Address)} is not an IP address`);
      if (p.hostSubnet && gatewayAsked) throw new DriverError(`tether IPAM: --gateway does not apply to tetherd's overlay pool ${p.pool}: each host's gateway is the first address of its own subnet (${p.hostSubnet.subnet} here)`);
      if (p.hostSubnet && !cidrContains(pool, asked)) throw new DriverError(`tether IPAM: ${r.Address} is not in this host's subnet ${p.hostSubnet.subnet} of the overlay ${p.pool}; each host gives addresses of its own subnet only`);
      if (!cidrContains(pool, asked)) throw new DriverError(`tether IPAM: ${r.Address} is not in the network's subnet ${p.pool}`);
    }
    // A routed container has its address alone (/32): every other address is through its gateway.
    const withPrefix = (ip: IP) => ({ Address: `${formatIP(ip)}/${p.routed && !gatewayAsked ? 32 : pool.prefix}`, Data: {} });
    if (gatewayAsked) {
      const sub = p.subPool ? parseCIDR(p.subPool)! : pool;
      const gw = asked ?? addToIP(networkOf(sub), 1)!;
      if (ipEqual(gw, networkOf(pool)) || (pool.ip.family === 4 && ipEqual(gw, lastOf(pool)))) throw new DriverError(`tether IPAM: --gateway ${formatIP(gw)} is the subnet's network or broadcast address`);
      const cfg = this.config(p, false);
      const kv = openStore(cfg);
      const holder = await withStore(kv, () => new Allocator(kv, cfg).holderOf(gw));
      if (holder) throw new DriverError(`tether IPAM: ${formatIP(gw)} is held by a container; it cannot be the gateway`);
      await this.state.putPool({ ...p, gateway: formatIP(gw) });
      return withPrefix(gw);
    }
    const cfg = this.config(p, asked === undefined);
    const kv = openStore(cfg);
    const owner = { containerID: `${OWNER_PREFIX}${nodeCrypto().randomBytes(8).toString('hex')}`, ifname: OWNER_IFNAME };
    try {
      const got = await withStore(kv, () => new Allocator(kv, cfg).allocate(owner, asked ? [asked] : []));
      return withPrefix(got.ips[0].ip);
    } catch (e) {
      if (e instanceof CniError && asked && /already held/.test(e.message)) throw new DriverError(`tether IPAM: ${r.Address} is already in use on this network`);
      if (e instanceof CniError && /no free address/.test(e.message)) throw new DriverError(`tether IPAM: no free address left in ${p.subPool ?? p.pool}`);
      throw e;
    }
  }

  async releaseAddress(r: ReleaseAddressRequest): Promise<Record<string, never>> {
    const p = await this.poolOf(r.PoolID);
    const ip = typeof r.Address === 'string' ? parseIP(r.Address.split('/')[0]) : null;
    if (!ip) throw badRequest(`tether IPAM: ${JSON.stringify(r.Address)} is not an IP address`);
    if (p.gateway && ipEqual(parseIP(p.gateway)!, ip)) {
      await this.state.putPool({ ...p, gateway: undefined });
      return {};
    }
    const cfg = this.config(p, false);
    const kv = openStore(cfg);
    await withStore(kv, async () => {
      const a = new Allocator(kv, cfg);
      const holder = await a.holderOf(ip);
      if (holder) await a.release(holder);
    });
    return {};
  }

  /**
   * This driver's allocations in a pool's store: a shared store (an overlay's, tetherd's BGP network) also
   * holds other hosts' and CNI pods' addresses, which are not Docker's here to reconcile.
   */
  private async ours(a: Allocator, cfg: IpamConfig) {
    return (await a.list()).filter((x) => x.node === cfg.nodeName && x.containerID.startsWith(OWNER_PREFIX));
  }

  /** Releases every allocation of every pool that is not in `live` and older than graceMs. */
  async reconcile(live: Set<string>, graceMs: number): Promise<string[]> {
    const released: string[] = [];
    const now = Date.now();
    for (const p of await this.state.pools()) {
      const cfg = this.config(p, false);
      const kv = openStore(cfg);
      await withStore(kv, async () => {
        const a = new Allocator(kv, cfg);
        for (const x of await this.ours(a, cfg)) {
          if (live.has(x.ip) || (x.since && now - Date.parse(x.since) < graceMs)) continue;
          await a.release({ containerID: x.containerID, ifname: x.ifname });
          released.push(x.ip);
        }
      });
    }
    return released;
  }

  /** Every address held, per pool: for status and reconciliation. */
  async held(): Promise<{ pool: PoolRecord; addresses: string[] }[]> {
    const out: { pool: PoolRecord; addresses: string[] }[] = [];
    for (const p of await this.state.pools()) {
      const cfg = this.config(p, false);
      const kv = openStore(cfg);
      const list = await withStore(kv, () => this.ours(new Allocator(kv, cfg), cfg));
      out.push({ pool: p, addresses: list.map((a) => a.ip) });
    }
    return out;
  }
}
