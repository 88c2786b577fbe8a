import { readFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { isAbsolute } from 'node:path';
import { parseEtcd, type EtcdConfig } from '../ipam/config.js';
import { formatCIDR, hostBitsZero, networkCIDR, parseCIDR, parseIP, type CIDR, type IP } from '../lib/ip/addr.js';
import { ifnameProblem } from '../lib/cni/validate.js';
import { DEFAULT_NODE_STATE_FILE } from '../lib/paths.js';

/** tetherd's configuration (a JSON file): the cluster network, this node, the store, the VXLAN device. */
export interface AgentConfig {
  /** Names the network's keys in the store: <etcd.prefix>/vxlan/<network>/subnets/. */
  network: string;
  /** The pool node subnets are cut from (Flannel's "Network"). */
  pool: CIDR;
  /** Prefix length of a node subnet (Flannel's "SubnetLen"). */
  subnetLen: number;
  nodeName: string;
  etcd: EtcdConfig;
  /** The underlay interface; by default the one holding the default route, else the only one with a global address. */
  underlayInterface?: string;
  /** The address peers send VXLAN to; by default the underlay interface's first global address. */
  underlayIP?: IP;
  /** The underlay's address family when underlayIP does not say: 4 by default, 6 for an IPv6 underlay. */
  underlayFamily: 4 | 6;
  vni: number;
  /** UDP port; 4789 (IANA) by default, 8472 is Flannel's (the kernel's default). */
  port: number;
  device: string;
  /** MTU of the device; by default the underlay's minus the encapsulation (50 over IPv4, 70 over IPv6). */
  mtu?: number;
  /** Peers on the underlay's own subnet get a plain route via their underlay address, no encapsulation. */
  directRouting: boolean;
  /** false turns off tx checksum offload on the device (the kernel/NAT bad-checksum bug class). */
  txChecksumOffload: boolean;
  /** Lease TTL in seconds; renewed at a third of it. */
  leaseTTL: number;
  /** Where the node's subnet and MTU are published for tether-vxlan (and where a restart finds its last subnet). */
  stateFile: string;
  /** How often the device is checked against the configuration (ms). */
  checkIntervalMs: number;
  /** How often the store is re-listed and the kernel reconciled, under the watch (ms). */
  resyncIntervalMs: number;
  logFile?: string;
  logLevel?: 'error' | 'warn' | 'info' | 'debug';
}

export class AgentConfigError extends Error {
  constructor(field: string, expected: string, got?: unknown) {
    super(`tetherd config: "${field}" ${expected}${got === undefined ? '' : `, got ${JSON.stringify(got)}`}`);
    this.name = 'AgentConfigError';
  }
}

export type Obj = Record<string, unknown>;

export function int(o: Obj, k: string, dflt: number, min: number, max: number): number {
  const v = o[k] ?? dflt;
  if (!Number.isInteger(v) || (v as number) < min || (v as number) > max) throw new AgentConfigError(k, `must be an integer from ${min} to ${max}`, v);
  return v as number;
}

export function bool(o: Obj, k: string, dflt: boolean): boolean {
  const v = o[k] ?? dflt;
  if (typeof v !== 'boolean') throw new AgentConfigError(k, 'must be true or false', v);
  return v;
}

function underlayFamily(v: unknown): 4 | 6 {
  if (v === undefined) return 4;
  if (v !== 4 && v !== 6) throw new AgentConfigError('underlayFamily', 'must be 4 or 6', v);
  return v;
}

/** What every mode's configuration has: the network's name, this node, the store, the underlay, the log. */
export interface CommonConfig {
  network: string;
  nodeName: string;
  etcd: EtcdConfig;
  underlayInterface?: string;
  underlayIP?: IP;
  logFile?: string;
  logLevel?: 'error' | 'warn' | 'info' | 'debug';
}

/** What every mode needs without the store: the network's name, this node, the underlay, the log. */
export function parseIdentity(c: Obj): Omit<CommonConfig, 'etcd'> {
  const network = c.network ?? 'tether';
  if (typeof network !== 'string' || !/^[A-Za-z0-9._-]{1,64}$/.test(network)) throw new AgentConfigError('network', 'must be a name of letters, digits, ".", "_" or "-"', network);
  const nodeName = c.nodeName ?? process.env.TETHER_NODENAME ?? hostname();
  if (typeof nodeName !== 'string' || !/^[A-Za-z0-9._-]{1,253}$/.test(nodeName)) throw new AgentConfigError('nodeName', 'must be a node name of letters, digits, ".", "_" or "-"', nodeName);
  if (c.underlayInterface !== undefined && (typeof c.underlayInterface !== 'string' || ifnameProblem(c.underlayInterface))) throw new AgentConfigError('underlayInterface', 'must be an interface name', c.underlayInterface);
  let underlayIP: IP | undefined;
  if (c.underlayIP !== undefined) {
    underlayIP = typeof c.underlayIP === 'string' ? parseIP(c.underlayIP) ?? undefined : undefined;
    if (!underlayIP) throw new AgentConfigError('underlayIP', 'must be an IP address', c.underlayIP);
  }
  if (c.logFile !== undefined && (typeof c.logFile !== 'string' || !isAbsolute(c.logFile))) throw new AgentConfigError('logFile', 'must be an absolute path', c.logFile);
  const logLevel = c.logLevel ?? 'info';
  if (!['error', 'warn', 'info', 'debug'].includes(logLevel as string)) throw new AgentConfigError('logLevel', 'must be error, warn, info or debug', logLevel);
  return { network, nodeName, underlayInterface: c.underlayInterface as string | undefined, underlayIP, logFile: c.logFile as string | undefined, logLevel: logLevel as CommonConfig['logLevel'] };
}

export function parseCommon(c: Obj): CommonConfig {
  const id = parseIdentity(c);
  let etcd: EtcdConfig | undefined;
  try { etcd = parseEtcd(c.etcd, 'etcd'); } catch (e) { throw new AgentConfigError('etcd', (e as Error).message.replace(/^[^:]*: /, '')); }
  if (!etcd) throw new AgentConfigError('etcd', 'is required: {"endpoints": [...]}, or "store": "peers" for the agents to agree among themselves');
  return { ...id, etcd };
}

/** An absolute path field with a default. */
export function absPath(c: Obj, k: string, dflt: string): string {
  const v = c[k] ?? dflt;
  if (typeof v !== 'string' || !isAbsolute(v)) throw new AgentConfigError(k, 'must be an absolute path', v);
  return v;
}

/** The mode a configuration file asks for: "vxlan" (the default) or "bgp". */
export function configMode(o: unknown): 'vxlan' | 'bgp' {
  const m = (o as Obj | null)?.mode ?? 'vxlan';
  if (m !== 'vxlan' && m !== 'bgp') throw new AgentConfigError('mode', 'must be "vxlan" or "bgp"', m);
  return m;
}

/** The file as JSON, with a configuration error naming it when it cannot be read. */
export function readConfigFile(path: string): unknown {
  try { return JSON.parse(readFileSync(path, 'utf8')); } catch (e) { throw new AgentConfigError('(file)', `${path} cannot be read as JSON: ${(e as Error).message}`); }
}

/** The VXLAN device's part of a configuration: the same fields whatever the store (etcd or peers). */
export type VxlanDeviceConfig = Pick<AgentConfig, 'underlayFamily' | 'vni' | 'port' | 'device' | 'mtu' | 'directRouting' | 'txChecksumOffload'>;

export function parseVxlanDevice(c: Obj, underlayIP: IP | undefined): VxlanDeviceConfig {
  const vni = int(c, 'vni', 1, 1, 0xffffff);
  const device = c.device ?? `tether.${vni}`;
  if (typeof device !== 'string' || ifnameProblem(device)) throw new AgentConfigError('device', ifnameProblem(String(device)) ?? 'must be an interface name', device);
  return {
    underlayFamily: underlayIP?.family ?? underlayFamily(c.underlayFamily),
    vni,
    port: int(c, 'port', 4789, 1, 65535),
    device,
    mtu: c.mtu === undefined ? undefined : int(c, 'mtu', 0, 68, 65535),
    directRouting: bool(c, 'directRouting', false),
    txChecksumOffload: bool(c, 'txChecksumOffload', true),
  };
}

export function parseAgentConfig(o: unknown): AgentConfig {
  if (typeof o !== 'object' || o === null || Array.isArray(o)) throw new AgentConfigError('(top level)', 'must be a JSON object');
  const c = o as Obj;
  const pool = typeof c.pool === 'string' ? parseCIDR(c.pool) : null;
  if (!pool || pool.ip.family !== 4) throw new AgentConfigError('pool', 'must be an IPv4 CIDR such as "10.244.0.0/16"', c.pool);
  if (!hostBitsZero(pool)) throw new AgentConfigError('pool', `has host bits set; the network address is ${formatCIDR(networkCIDR(pool))}`, c.pool);
  const subnetLen = int(c, 'subnetLen', 24, pool.prefix + 1, 30);
  if (configMode(c) !== 'vxlan') throw new AgentConfigError('mode', 'must be "vxlan" for the VXLAN agent', c.mode);
  const common = parseCommon(c);
  const stateFile = absPath(c, 'stateFile', DEFAULT_NODE_STATE_FILE);
  return {
    ...common, pool, subnetLen,
    ...parseVxlanDevice(c, common.underlayIP),
    leaseTTL: int(c, 'leaseTTL', 3600, 5, 7 * 86400),
    stateFile,
    checkIntervalMs: int(c, 'checkIntervalMs', 500, 50, 60_000),
    resyncIntervalMs: int(c, 'resyncIntervalMs', 60_000, 1000, 86_400_000),
  };
}

