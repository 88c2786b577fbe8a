import { CniError, ErrorCode } from '../cni/errors.js';
import { fieldOf } from '../cni/fields.js';
import { formatIP, isUnspecified, parseIP, type Family, type IP } from '../ip/addr.js';

export type Protocol = 'tcp' | 'udp' | 'sctp';
export const PROTOCOL_NUMBER: Record<Protocol, number> = { tcp: 6, udp: 17, sctp: 132 };

/** One published port, as runtimes send it in runtimeConfig.portMappings (and docker -p / podman -p mean it). */
export interface PortMapping {
  hostPort: number;
  containerPort: number;
  protocol: Protocol;
  /** Only this host address; absent: every address of the host (both families, or the one of "0.0.0.0" / "::"). */
  hostIP?: IP;
  /** Set for "0.0.0.0" and "::": every address of that family only. */
  wildcardFamily?: Family;
}

const bad = (field: string, msg: string, value: unknown) =>
  new CniError(ErrorCode.InvalidNetworkConfig, `invalid ${field}: ${msg}`, `${field}=${JSON.stringify(value)}`);

function port(field: string, v: unknown): number {
  if (typeof v !== 'number' || !Number.isInteger(v) || v < 1 || v > 65535) throw bad(field, 'must be a port number from 1 to 65535', v);
  return v;
}

/** Reads runtimeConfig.portMappings; every bad entry is a code 7 error naming the entry and field. */
export function parsePortMappings(raw: unknown, field = 'runtimeConfig.portMappings'): PortMapping[] {
  if (raw === undefined || raw === null) return [];
  if (!Array.isArray(raw)) throw bad(field, 'must be a list of {hostPort, containerPort, protocol, hostIP}', raw);
  const out = raw.map((m, i): PortMapping => {
    const f = `${field}[${i}]`;
    if (typeof m !== 'object' || m === null || Array.isArray(m)) throw bad(f, 'must be an object {hostPort, containerPort, protocol, hostIP}', m);
    const o = m as Record<string, unknown>;
    const protocol = fieldOf(o, 'protocol');
    const hostIP = fieldOf(o, 'hostIP');
    const proto = protocol === undefined || protocol === '' ? 'tcp' : typeof protocol === 'string' ? protocol.toLowerCase() : protocol;
    if (proto !== 'tcp' && proto !== 'udp' && proto !== 'sctp') throw bad(`${f}.protocol`, 'must be "tcp", "udp" or "sctp"', protocol);
    const mapping: PortMapping = { hostPort: port(`${f}.hostPort`, fieldOf(o, 'hostPort')), containerPort: port(`${f}.containerPort`, fieldOf(o, 'containerPort')), protocol: proto };
    if (hostIP !== undefined && hostIP !== '') {
      const ip = typeof hostIP === 'string' ? parseIP(hostIP) : null;
      if (!ip) throw bad(`${f}.hostIP`, 'must be an IPv4 or IPv6 address', hostIP);
      if (isUnspecified(ip)) mapping.wildcardFamily = ip.family;
      else mapping.hostIP = ip;
    }
    return mapping;
  });
  // The same published port twice in one request can only be a mistake; say so instead of keeping one.
  const seen = new Map<string, number>();
  // ...and so is one port both on every address and on one address (Docker: "port is already allocated").
  const kinds = new Map<string, number>();
  out.forEach((m, i) => {
    for (const k of claimKeys(m)) {
      const j = seen.get(k);
      if (j !== undefined) throw bad(`${field}[${i}]`, `publishes ${describeMapping(m)}, which entry ${j} already publishes`, raw[i]);
      seen.set(k, i);
      const [f, where, rest] = [k.split('/')[0], k.split('/')[1], k.split('/').slice(2).join('/')];
      const mine = `${f}/${where === '*' ? '*' : 'ip'}/${rest}`;
      const other = kinds.get(`${f}/${where === '*' ? 'ip' : '*'}/${rest}`);
      if (other !== undefined) throw bad(`${field}[${i}]`, `publishes ${describeMapping(m)}, which overlaps entry ${other} (${describeMapping(out[other])}) on IPv${f}`, raw[i]);
      if (!kinds.has(mine)) kinds.set(mine, i);
    }
  });
  return out;
}

function claimKeys(m: PortMapping): string[] {
  const fams: Family[] = m.hostIP ? [m.hostIP.family] : m.wildcardFamily ? [m.wildcardFamily] : [4, 6];
  return fams.map((f) => `${f}/${m.hostIP ? formatIP(m.hostIP) : '*'}/${m.protocol}/${m.hostPort}`);
}

/** "8080/tcp on 198.18.0.1" or "8080/tcp on every host address". */
export function describeMapping(m: Pick<PortMapping, 'hostPort' | 'protocol' | 'hostIP' | 'wildcardFamily'>): string {
  const where = m.hostIP ? formatIP(m.hostIP) : m.wildcardFamily === 4 ? 'every IPv4 host address' : m.wildcardFamily === 6 ? 'every IPv6 host address' : 'every host address';
  return `${m.hostPort}/${m.protocol} on ${where}`;
}
