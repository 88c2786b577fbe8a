import { readFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { isAbsolute } from 'node:path';
import { invalidConfig } from '../lib/cni/errors.js';
import type { NetConf, RouteConfig } from '../lib/cni/types.js';
import {
  addToIP, cidrContains, cidrsOverlap, compareIP, formatCIDR, formatIP, hostBitsZero, ipToBigInt, lastOf,
  networkCIDR, networkOf, parseCIDR, parseIP, type CIDR, type IP,
} from '../lib/ip/addr.js';

export interface Range {
  subnet: CIDR;
  start: IP;
  end: IP;
  gateway: IP;
}

/** One range set yields exactly one address (host-local's model: one v4 set + one v6 set = dual stack). */
export type RangeSet = Range[];

export interface IpamConfig {
  network: string;
  ranges: RangeSet[];
  routes: RouteConfig[];
  dataDir: string;
  /** Addresses never handed out (single addresses or whole CIDRs). */
  exclude: CIDR[];
  resolvConf?: string;
  /** Block prefix lengths: a node claims a block, then allocates inside it. */
  blockSize: { v4: number; v6: number };
  /** The node allocations are made for: ipam.nodeName, else TETHER_NODENAME, else the host name. */
  nodeName: string;
  /** Never take an address from another node's block (otherwise borrowed when no free block is left). */
  strictAffinity: boolean;
  /** At most this many blocks per node; 0 is no limit. */
  maxBlocksPerNode: number;
  /** Shared state in etcd instead of the embedded store. */
  etcd?: EtcdConfig;
  /**
   * Peer mode (tetherd "store": "peers"): the node's agent writes the blocks it owns into the embedded
   * store, and IPAM allocates only from those, never claiming a block or borrowing from one itself.
   */
  agentBlocks: boolean;
}

export interface EtcdConfig {
  endpoints: string[];
  prefix: string;
  tls?: { ca?: string; cert?: string; key?: string };
  username?: string;
  password?: string;
  timeoutMs: number;
}

/** "etcd": {endpoints, prefix, tls: {ca, cert, key}, username, password | credentialsFile, timeoutMs}; errors name `field`. */
export function parseEtcd(v: unknown, field = 'ipam.etcd'): EtcdConfig | undefined {
  if (v === undefined || v === null) return undefined;
  if (!isObj(v)) throw invalidConfig(field, 'must be an object with "endpoints"', v);
  const endpoints = v.endpoints;
  if (!Array.isArray(endpoints) || !endpoints.length || endpoints.some((e) => typeof e !== 'string' || !/^(https?:\/\/[^/]+\/?|unix:\/\/\/.+)$/.test(e))) {
    throw invalidConfig(`${field}.endpoints`, 'must be a non-empty list of URLs such as "http://10.0.0.5:2379" or "unix:///run/etcd.sock"', endpoints);
  }
  const prefix = v.prefix ?? '/tether';
  if (typeof prefix !== 'string') throw invalidConfig(`${field}.prefix`, 'must be a string', prefix);
  let tls: EtcdConfig['tls'];
  if (v.tls !== undefined) {
    if (!isObj(v.tls)) throw invalidConfig(`${field}.tls`, 'must be {"ca", "cert", "key"} file paths', v.tls);
    tls = {};
    for (const k of ['ca', 'cert', 'key'] as const) {
      const p = v.tls[k];
      if (p === undefined) continue;
      if (typeof p !== 'string' || !isAbsolute(p)) throw invalidConfig(`${field}.tls.${k}`, 'must be an absolute file path', p);
      tls[k] = p;
    }
  }
  let username = v.username;
  let password = v.password;
  if (v.credentialsFile !== undefined) {
    // Credentials kept out of the conflist: a JSON file {"username", "password"}, readable by root only.
    if (typeof v.credentialsFile !== 'string' || !isAbsolute(v.credentialsFile)) throw invalidConfig(`${field}.credentialsFile`, 'must be an absolute file path', v.credentialsFile);
    let creds: Obj;
    try { creds = JSON.parse(readFileSync(v.credentialsFile, 'utf8')) as Obj; } catch (e) {
      throw invalidConfig(`${field}.credentialsFile`, `cannot be read as JSON {"username", "password"} (${(e as Error).message})`, v.credentialsFile);
    }
    username = creds.username;
    password = creds.password;
  }
  if (username !== undefined && typeof username !== 'string') throw invalidConfig(`${field}.username`, 'must be a string');
  if (password !== undefined && typeof password !== 'string') throw invalidConfig(`${field}.password`, 'must be a string');
  const timeoutMs = v.timeoutMs ?? 4000;
  if (!Number.isInteger(timeoutMs) || (timeoutMs as number) < 100 || (timeoutMs as number) > 60_000) throw invalidConfig(`${field}.timeoutMs`, 'must be from 100 to 60000', timeoutMs);
  return { endpoints: endpoints as string[], prefix: prefix.replace(/\/+$/, ''), tls, username: username as string | undefined, password: password as string | undefined, timeoutMs: timeoutMs as number };
}

export const DEFAULT_DATA_DIR = '/var/lib/cni/tether/ipam';

type Obj = Record<string, unknown>;
const isObj = (v: unknown): v is Obj => typeof v === 'object' && v !== null && !Array.isArray(v);

function ipField(v: unknown, field: string): IP | undefined {
  if (v === undefined || v === null || v === '') return undefined;
  const ip = typeof v === 'string' ? parseIP(v) : null;
  if (!ip) throw invalidConfig(field, 'must be an IP address', v);
  return ip;
}

/** host-local's range rules: subnet without host bits, big enough, start/end/gateway inside it. */
export function parseRange(o: unknown, field: string): Range {
  if (!isObj(o)) throw invalidConfig(field, 'must be an object with a "subnet"', o);
  const subnet = typeof o.subnet === 'string' ? parseCIDR(o.subnet) : null;
  if (!subnet) throw invalidConfig(`${field}.subnet`, 'must be a CIDR such as "10.22.0.0/16"', o.subnet);
  if (!hostBitsZero(subnet)) {
    throw invalidConfig(`${field}.subnet`, `has host bits set; the network address is ${formatCIDR(networkCIDR(subnet))}`, o.subnet);
  }
  const bits = subnet.ip.family === 4 ? 32 : 128;
  if (subnet.prefix > bits - 2) throw invalidConfig(`${field}.subnet`, `is too small to allocate from (/${bits - 1} and /${bits} have no usable addresses)`, o.subnet);
  const first = addToIP(networkOf(subnet), 1)!;
  // IPv4 keeps the broadcast address out; IPv6 has none.
  const last = subnet.ip.family === 4 ? addToIP(lastOf(subnet), -1)! : lastOf(subnet);
  const start = ipField(o.rangeStart, `${field}.rangeStart`) ?? first;
  const end = ipField(o.rangeEnd, `${field}.rangeEnd`) ?? last;
  const gateway = ipField(o.gateway, `${field}.gateway`) ?? first;
  for (const [name, ip] of [['rangeStart', start], ['rangeEnd', end], ['gateway', gateway]] as const) {
    if (!cidrContains(subnet, ip)) throw invalidConfig(`${field}.${name}`, `must be inside ${formatCIDR(subnet)}`, formatIP(ip));
  }
  if (compareIP(start, end) > 0) throw invalidConfig(`${field}.rangeStart`, `must not be after rangeEnd ${formatIP(end)}`, formatIP(start));
  return { subnet, start, end, gateway };
}

export function describeSet(set: RangeSet): string {
  return set.map((r) => `${formatIP(r.start)}-${formatIP(r.end)}`).join(',');
}

function parseRoutes(v: unknown): RouteConfig[] {
  if (v === undefined || v === null) return [];
  if (!Array.isArray(v)) throw invalidConfig('ipam.routes', 'must be a list of {"dst", "gw"}', v);
  return v.map((r, i) => {
    if (!isObj(r) || typeof r.dst !== 'string' || !parseCIDR(r.dst)) throw invalidConfig(`ipam.routes[${i}].dst`, 'must be a CIDR', isObj(r) ? r.dst : r);
    const route: RouteConfig = { dst: r.dst };
    if (r.gw !== undefined && r.gw !== null && r.gw !== '') {
      if (typeof r.gw !== 'string' || !parseIP(r.gw)) throw invalidConfig(`ipam.routes[${i}].gw`, 'must be an IP address', r.gw);
      route.gw = r.gw;
    }
    return route;
  });
}

/**
 * Reads the ipam section. `runtimeConfig.ipRanges` (capability ipRanges) comes first, then the legacy
 * single range, then `ranges`, as host-local orders them.
 */
export function parseIpamConfig(conf: NetConf): IpamConfig {
  const ipam = conf.ipam as Obj | undefined;
  if (!isObj(ipam)) throw invalidConfig('ipam', 'must be an object with "type"', ipam);
  const sets: unknown[] = [];
  const rcRanges = (conf.runtimeConfig as Obj | undefined)?.ipRanges;
  if (rcRanges !== undefined) {
    if (!Array.isArray(rcRanges)) throw invalidConfig('runtimeConfig.ipRanges', 'must be a list of range sets', rcRanges);
    sets.push(...rcRanges);
  }
  if (ipam.subnet !== undefined) sets.push([{ subnet: ipam.subnet, rangeStart: ipam.rangeStart, rangeEnd: ipam.rangeEnd, gateway: ipam.gateway }]);
  if (ipam.ranges !== undefined) {
    if (!Array.isArray(ipam.ranges)) throw invalidConfig('ipam.ranges', 'must be a list of range sets (lists of ranges)', ipam.ranges);
    sets.push(...ipam.ranges);
  }
  if (!sets.length) throw invalidConfig('ipam.ranges', 'is required: at least one range set such as [[{"subnet": "10.22.0.0/16"}]]');
  const ranges: RangeSet[] = sets.map((s, i) => {
    const field = `ipam.ranges[${i}]`;
    if (!Array.isArray(s) || !s.length) throw invalidConfig(field, 'must be a non-empty list of ranges', s);
    const set = s.map((r, j) => parseRange(r, `${field}[${j}]`));
    for (const r of set) {
      if (r.subnet.ip.family !== set[0].subnet.ip.family) throw invalidConfig(field, 'mixes IPv4 and IPv6 ranges; use one range set per family');
    }
    for (let a = 0; a < set.length; a++) for (let b = a + 1; b < set.length; b++) {
      if (cidrsOverlap(set[a].subnet, set[b].subnet)) throw invalidConfig(`${field}[${b}]`, `overlaps ${formatCIDR(set[a].subnet)}`, formatCIDR(set[b].subnet));
    }
    return set;
  });
  for (let a = 0; a < ranges.length; a++) for (let b = a + 1; b < ranges.length; b++) {
    for (const ra of ranges[a]) for (const rb of ranges[b]) {
      if (cidrsOverlap(ra.subnet, rb.subnet)) throw invalidConfig(`ipam.ranges[${b}]`, `overlaps range set ${a} (${formatCIDR(ra.subnet)})`, formatCIDR(rb.subnet));
    }
  }
  const exclude = ((): CIDR[] => {
    if (ipam.exclude === undefined) return [];
    if (!Array.isArray(ipam.exclude)) throw invalidConfig('ipam.exclude', 'must be a list of addresses or CIDRs', ipam.exclude);
    return ipam.exclude.map((x, i) => {
      const c = typeof x === 'string' ? (x.includes('/') ? parseCIDR(x) : (() => { const ip = parseIP(x); return ip ? { ip, prefix: ip.family === 4 ? 32 : 128 } : null; })()) : null;
      if (!c) throw invalidConfig(`ipam.exclude[${i}]`, 'must be an address or a CIDR', x);
      return networkCIDR(c);
    });
  })();
  const dataDir = ipam.dataDir ?? DEFAULT_DATA_DIR;
  if (typeof dataDir !== 'string' || !isAbsolute(dataDir)) throw invalidConfig('ipam.dataDir', 'must be an absolute path', dataDir);
  if (ipam.resolvConf !== undefined && typeof ipam.resolvConf !== 'string') throw invalidConfig('ipam.resolvConf', 'must be a path', ipam.resolvConf);
  const blockSize = { v4: 26, v6: 122 };
  if (ipam.blockSize !== undefined) {
    const b = ipam.blockSize as Obj | number;
    const v4 = typeof b === 'number' ? b : b?.v4;
    const v6 = typeof b === 'number' ? undefined : b?.v6;
    if (v4 !== undefined && (!Number.isInteger(v4) || (v4 as number) < 8 || (v4 as number) > 32)) throw invalidConfig('ipam.blockSize', 'must be a prefix length from 8 to 32 (or {"v4": 26, "v6": 122})', ipam.blockSize);
    if (v6 !== undefined && (!Number.isInteger(v6) || (v6 as number) < 64 || (v6 as number) > 128)) throw invalidConfig('ipam.blockSize.v6', 'must be a prefix length from 64 to 128', v6);
    if (v4 !== undefined) blockSize.v4 = v4 as number;
    if (v6 !== undefined) blockSize.v6 = v6 as number;
  }
  const nodeName = ipam.nodeName ?? process.env.TETHER_NODENAME ?? hostname();
  if (typeof nodeName !== 'string' || !nodeName) throw invalidConfig('ipam.nodeName', 'must be a non-empty string', ipam.nodeName);
  if (ipam.strictAffinity !== undefined && typeof ipam.strictAffinity !== 'boolean') throw invalidConfig('ipam.strictAffinity', 'must be true or false', ipam.strictAffinity);
  if (ipam.agentBlocks !== undefined && typeof ipam.agentBlocks !== 'boolean') throw invalidConfig('ipam.agentBlocks', 'must be true or false', ipam.agentBlocks);
  if (ipam.agentBlocks === true && ipam.etcd !== undefined) throw invalidConfig('ipam.agentBlocks', 'is for the embedded store tetherd fills in peer mode; it cannot be combined with "etcd"');
  const maxBlocks = ipam.maxBlocksPerNode ?? 0;
  if (!Number.isInteger(maxBlocks) || (maxBlocks as number) < 0) throw invalidConfig('ipam.maxBlocksPerNode', 'must be a whole number (0: no limit)', maxBlocks);
  return {
    network: conf.name, ranges, routes: parseRoutes(ipam.routes), dataDir, exclude, resolvConf: ipam.resolvConf as string | undefined,
    blockSize, nodeName, strictAffinity: ipam.strictAffinity === true, maxBlocksPerNode: maxBlocks as number,
    etcd: parseEtcd(ipam.etcd), agentBlocks: ipam.agentBlocks === true,
  };
}

/** Usable addresses of a set: its ranges minus the gateways (exclusions are counted at allocation time). */
export function setCapacity(set: RangeSet): bigint {
  let n = 0n;
  for (const r of set) {
    n += ipToBigInt(r.end) - ipToBigInt(r.start) + 1n;
    if (compareIP(r.gateway, r.start) >= 0 && compareIP(r.gateway, r.end) <= 0) n -= 1n;
  }
  return n;
}
