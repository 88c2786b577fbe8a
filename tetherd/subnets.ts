import { addToIP, cidrContains, formatIP, ipEqual, parseCIDR, type CIDR } from '../lib/ip/addr.js';

/**
 * The store's model of node subnets (Flannel's leases): one key per subnet, subnets/<a.b.c.d>-<len>,
 * attached to the owning node's etcd lease, whose value says who owns it and how to reach it.
 */
export interface NodeRecord {
  node: string;
  underlayIP: string;
  vtepMAC: string;
  vni: number;
  backend: 'vxlan';
}

export interface Peer extends NodeRecord { subnet: CIDR }

export const SUBNETS = 'subnets/';

export const subnetKey = (c: CIDR) => `${SUBNETS}${formatIP(c.ip)}-${c.prefix}`;

export function subnetFromKey(key: string): CIDR | null {
  const m = /^subnets\/([0-9.]+)-(\d+)$/.exec(key);
  return m ? parseCIDR(`${m[1]}/${m[2]}`) : null;
}

export function parseRecord(key: string, value: string): Peer | null {
  const subnet = subnetFromKey(key);
  if (!subnet) return null;
  try {
    const r = JSON.parse(value) as NodeRecord;
    if (typeof r.node !== 'string' || typeof r.underlayIP !== 'string' || typeof r.vtepMAC !== 'string') return null;
    return { ...r, subnet };
  } catch { return null; }
}

/** Every subnet of the pool at this length, skipping the first (as Flannel does: it holds the network address). */
export function* candidates(pool: CIDR, len: number): Generator<CIDR> {
  const count = 2 ** (len - pool.prefix);
  const step = 2n ** BigInt(32 - len);
  for (let i = 1; i < count; i++) {
    const ip = addToIP(pool.ip, step * BigInt(i));
    if (ip) yield { ip, prefix: len };
  }
}

const sameSubnet = (a: CIDR, b: CIDR) => a.prefix === b.prefix && ipEqual(a.ip, b.ip);

/**
 * Which subnet this node takes: the one the store already gives it (a restart), else the one it had
 * last time if nobody took it meanwhile (its state file: the store lost it, e.g. the lease expired),
 * else the first free one. null when the pool is full.
 */
export function chooseSubnet(taken: Peer[], me: string, pool: CIDR, len: number, previous?: CIDR): { subnet: CIDR; reclaimed: 'store' | 'state' | 'new' } | null {
  const own = taken.find((p) => p.node === me && p.subnet.prefix === len && cidrContains(pool, p.subnet.ip));
  if (own) return { subnet: own.subnet, reclaimed: 'store' };
  const free = (c: CIDR) => !taken.some((p) => sameSubnet(p.subnet, c));
  if (previous && previous.prefix === len && cidrContains(pool, previous.ip) && free(previous)) return { subnet: previous, reclaimed: 'state' };
  for (const c of candidates(pool, len)) if (free(c)) return { subnet: c, reclaimed: 'new' };
  return null;
}

