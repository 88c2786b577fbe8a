import { parseCIDR, parseIP } from '../ip/addr.js';
import { CniError, ErrorCode } from './errors.js';
import type { DNS, Interface, IPConfig, Result, RouteConfig } from './types.js';
import { versionAtLeast } from './version.js';

// Results arrive in any supported version (from a delegate, from prevResult, from the cache) and
// leave in the version the config asked for. In between there is only the 1.1.0 shape.

type Obj = Record<string, unknown>;
const isObj = (v: unknown): v is Obj => typeof v === 'object' && v !== null && !Array.isArray(v);

class Reader {
  constructor(private readonly what: string, private readonly code: number) {}
  fail(field: string, expected: string, got: unknown): never {
    throw new CniError(this.code, `invalid ${this.what}: "${field}" ${expected}, got ${JSON.stringify(got)}`, field);
  }
  str(o: Obj, k: string, path: string, required = false): string | undefined {
    const v = o[k];
    if (v === undefined || v === null) return required ? this.fail(`${path}.${k}`, 'is required', v) : undefined;
    return typeof v === 'string' ? v : this.fail(`${path}.${k}`, 'must be a string', v);
  }
  int(o: Obj, k: string, path: string, min = 0): number | undefined {
    const v = o[k];
    if (v === undefined || v === null) return undefined;
    return Number.isInteger(v) && (v as number) >= min ? v as number : this.fail(`${path}.${k}`, `must be an integer >= ${min}`, v);
  }
  list(o: Obj, k: string, path: string): unknown[] {
    const v = o[k];
    if (v === undefined || v === null) return [];
    return Array.isArray(v) ? v : this.fail(`${path}.${k}`, 'must be a list', v);
  }
  strings(o: Obj, k: string, path: string): string[] | undefined {
    const v = o[k];
    if (v === undefined || v === null) return undefined;
    if (!Array.isArray(v) || v.some((x) => typeof x !== 'string')) this.fail(`${path}.${k}`, 'must be a list of strings', v);
    return v as string[];
  }
}

function parseDNS(r: Reader, v: unknown, path: string): DNS | undefined {
  if (v === undefined || v === null) return undefined;
  if (!isObj(v)) return r.fail(path, 'must be an object', v);
  const dns: DNS = {};
  const ns = r.strings(v, 'nameservers', path); if (ns?.length) dns.nameservers = ns;
  const domain = r.str(v, 'domain', path); if (domain) dns.domain = domain;
  const search = r.strings(v, 'search', path); if (search?.length) dns.search = search;
  const options = r.strings(v, 'options', path); if (options?.length) dns.options = options;
  return Object.keys(dns).length ? dns : undefined;
}

/**
 * Reads a result of any supported version into the 1.1.0 model, checking every field.
 * `version` is what to assume when the result carries no cniVersion (libcni does the same).
 */
export function parseResult(raw: unknown, version: string, what = 'result', code: number = ErrorCode.DecodingFailure): Result {
  const r = new Reader(what, code);
  if (!isObj(raw)) return r.fail('', 'must be a JSON object', raw);
  const cniVersion = r.str(raw, 'cniVersion', what) ?? version;
  if ('ip4' in raw || 'ip6' in raw) {
    throw new CniError(ErrorCode.IncompatibleVersion, `${what} uses the 0.1/0.2 format, which tether does not support`);
  }
  const legacy = !versionAtLeast(cniVersion, '1.0.0');
  const interfaces: Interface[] = r.list(raw, 'interfaces', what).map((v, i) => {
    const p = `interfaces[${i}]`;
    if (!isObj(v)) return r.fail(p, 'must be an object', v);
    const iface: Interface = { name: r.str(v, 'name', p, true)! };
    const mac = r.str(v, 'mac', p); if (mac) iface.mac = mac;
    const mtu = r.int(v, 'mtu', p); if (mtu !== undefined) iface.mtu = mtu;
    const sandbox = r.str(v, 'sandbox', p); if (sandbox) iface.sandbox = sandbox;
    const socketPath = r.str(v, 'socketPath', p); if (socketPath) iface.socketPath = socketPath;
    const pciID = r.str(v, 'pciID', p); if (pciID) iface.pciID = pciID;
    return iface;
  });
  const ips: IPConfig[] = r.list(raw, 'ips', what).map((v, i) => {
    const p = `ips[${i}]`;
    if (!isObj(v)) return r.fail(p, 'must be an object', v);
    const address = r.str(v, 'address', p, true)!;
    const cidr = parseCIDR(address);
    if (!cidr) r.fail(`${p}.address`, 'must be an address in CIDR form', address);
    if (legacy && v.version !== undefined && v.version !== String(cidr!.ip.family)) {
      r.fail(`${p}.version`, `must be "${cidr!.ip.family}" for ${address}`, v.version);
    }
    const ip: IPConfig = { address };
    const gateway = r.str(v, 'gateway', p);
    if (gateway) {
      if (!parseIP(gateway)) r.fail(`${p}.gateway`, 'must be an IP address', gateway);
      ip.gateway = gateway;
    }
    const idx = r.int(v, 'interface', p);
    if (idx !== undefined) {
      if (interfaces.length && idx >= interfaces.length) r.fail(`${p}.interface`, `must index interfaces (0-${interfaces.length - 1})`, idx);
      ip.interface = idx;
    }
    return ip;
  });
  const routes: RouteConfig[] = r.list(raw, 'routes', what).map((v, i) => {
    const p = `routes[${i}]`;
    if (!isObj(v)) return r.fail(p, 'must be an object', v);
    const dst = r.str(v, 'dst', p, true)!;
    if (!parseCIDR(dst)) r.fail(`${p}.dst`, 'must be a CIDR', dst);
    const route: RouteConfig = { dst };
    const gw = r.str(v, 'gw', p);
    if (gw) {
      if (!parseIP(gw)) r.fail(`${p}.gw`, 'must be an IP address', gw);
      route.gw = gw;
    }
    for (const k of ['mtu', 'advmss', 'priority', 'table', 'scope'] as const) {
      const n = r.int(v, k, p);
      if (n !== undefined) route[k] = n;
    }
    return route;
  });
  const result: Result = { cniVersion };
  if (interfaces.length) result.interfaces = interfaces;
  if (ips.length) result.ips = ips;
  if (routes.length) result.routes = routes;
  const dns = parseDNS(r, raw.dns, 'dns');
  if (dns) result.dns = dns;
  return result;
}

/**
 * The result as the given version prints it: 0.3.x/0.4.0 add ips[].version and know only name/mac/sandbox
 * interfaces and dst/gw routes; 1.0.0 lacks the 1.1.0 additions. Empty lists and empty dns are omitted.
 */
export function formatResult(result: Result, version: string): Record<string, unknown> {
  const v11 = versionAtLeast(version, '1.1.0');
  const v10 = versionAtLeast(version, '1.0.0');
  const out: Record<string, unknown> = { cniVersion: version };
  if (result.interfaces?.length) {
    out.interfaces = result.interfaces.map((i) => {
      const o: Interface = { name: i.name };
      if (i.mac) o.mac = i.mac;
      if (v11 && i.mtu !== undefined) o.mtu = i.mtu;
      if (i.sandbox) o.sandbox = i.sandbox;
      if (v11 && i.socketPath) o.socketPath = i.socketPath;
      if (v11 && i.pciID) o.pciID = i.pciID;
      return o;
    });
  }
  if (result.ips?.length) {
    out.ips = result.ips.map((ip) => {
      const o: Record<string, unknown> = {};
      if (!v10) o.version = ip.address.includes(':') ? '6' : '4';
      if (ip.interface !== undefined) o.interface = ip.interface;
      o.address = ip.address;
      if (ip.gateway) o.gateway = ip.gateway;
      return o;
    });
  }
  if (result.routes?.length) {
    out.routes = result.routes.map((r) => {
      const o: RouteConfig = { dst: r.dst };
      if (r.gw) o.gw = r.gw;
      if (v11) {
        for (const k of ['mtu', 'advmss', 'priority', 'table', 'scope'] as const) if (r[k] !== undefined) o[k] = r[k];
      }
      return o;
    });
  }
  if (result.dns && Object.keys(result.dns).length) out.dns = result.dns;
  return out;
}

/** Convenience for a plugin's output: one JSON document, in the requested version. */
export function resultJSON(result: Result, version: string): string {
  return JSON.stringify(formatResult(result, version));
}
