import { readFileSync } from 'node:fs';
import { cniArg } from '../lib/cni/env.js';
import { CniError, ErrorCode, invalidConfig } from '../lib/cni/errors.js';
import type { Context, PluginSpec } from '../lib/cni/skel.js';
import type { DNS, NetConf, Result } from '../lib/cni/types.js';
import { containerIDProblem, ifnameProblem } from '../lib/cni/validate.js';
import { formatIP, parseCIDR, parseIP, type IP } from '../lib/ip/addr.js';
import { Allocator, type Owner } from './allocator.js';
import { describeSet, parseIpamConfig, type IpamConfig } from './config.js';
import { nodeLock, openStore, withStore } from './store.js';
import { mark } from '../lib/trace.js';

export interface IpamNetConf extends NetConf {
  ipamConfig: IpamConfig;
}

const owner = (ctx: Context): Owner => ({ containerID: ctx.args.containerID, ifname: ctx.args.ifname });
const doing = (verb: string, ctx: Context) => `tether-ipam ${verb} ${ctx.args.containerID}/${ctx.args.ifname}`;

function toIP(s: unknown, field: string): IP {
  const text = typeof s === 'string' ? s : '';
  const ip = parseIP(text.split('/')[0]) ?? parseCIDR(text)?.ip;
  if (!ip) throw invalidConfig(field, 'must be an IP address (optionally with /prefix)', s);
  return ip;
}

/** Requested addresses: runtimeConfig.ips, else args.cni.ips, else CNI_ARGS IP=a,b (the conventions' precedence). */
function requestedIPs(ctx: Context): IP[] {
  const rc = (ctx.conf.runtimeConfig as { ips?: unknown } | undefined)?.ips;
  if (rc !== undefined) {
    if (!Array.isArray(rc)) throw invalidConfig('runtimeConfig.ips', 'must be a list of addresses', rc);
    return rc.map((x, i) => toIP(x, `runtimeConfig.ips[${i}]`));
  }
  const args = (ctx.conf.args as { cni?: { ips?: unknown } } | undefined)?.cni?.ips;
  if (args !== undefined) {
    if (!Array.isArray(args)) throw invalidConfig('args.cni.ips', 'must be a list of addresses', args);
    return args.map((x, i) => toIP(x, `args.cni.ips[${i}]`));
  }
  const env = cniArg(ctx.args, 'IP');
  if (!env) return [];
  return env.split(',').map((x) => {
    const ip = parseIP(x.trim().split('/')[0]);
    if (!ip) throw new CniError(ErrorCode.InvalidEnvironment, `CNI_ARGS IP=${env}: "${x}" is not an IP address`, 'CNI_ARGS');
    return ip;
  });
}

/** nameserver / domain / search / options lines of a resolv.conf, as host-local reads them. */
export function readResolvConf(path: string): DNS {
  let text: string;
  try { text = readFileSync(path, 'utf8'); } catch (e) {
    throw invalidConfig('ipam.resolvConf', `names a file that cannot be read (${(e as Error).message})`, path);
  }
  const dns: DNS = {};
  for (const line of text.split('\n')) {
    const [key, ...rest] = line.trim().split(/\s+/);
    if (!rest.length || key.startsWith('#')) continue;
    if (key === 'nameserver') (dns.nameservers ??= []).push(rest[0]);
    else if (key === 'domain') dns.domain = rest[0];
    else if (key === 'search') dns.search = rest;
    else if (key === 'options') (dns.options ??= []).push(...rest);
  }
  return dns;
}

export const ipamPlugin: PluginSpec<IpamNetConf> = {
  name: 'tether-ipam',
  about: 'tether-ipam: IP address management with state in a key-value store (embedded on disk by default)',
  parseConfig(conf) {
    return { ...conf, ipamConfig: parseIpamConfig(conf) };
  },

  async add(ctx) {
    const cfg = ctx.conf.ipamConfig;
    const kv = openStore(cfg);
    const requested = requestedIPs(ctx);
    mark('ipam: config');
    const got = await withStore(kv, () => nodeLock(cfg, doing('ADD', ctx))(() => { mark('ipam: node lock'); return new Allocator(kv, cfg).allocate(owner(ctx), requested, ctx.args.netns || undefined); }));
    ctx.log.info('allocated', { network: cfg.network, containerID: ctx.args.containerID, ifname: ctx.args.ifname, ips: got.ips.map((i) => formatIP(i.ip)), existing: got.existing });
    const result: Result = {
      cniVersion: ctx.version,
      ips: got.ips.map(({ ip, range }) => ({ address: `${formatIP(ip)}/${range.subnet.prefix}`, gateway: formatIP(range.gateway) })),
    };
    if (cfg.routes.length) result.routes = cfg.routes;
    if (cfg.resolvConf) result.dns = readResolvConf(cfg.resolvConf);
    return result;
  },

  async del(ctx) {
    const cfg = ctx.conf.ipamConfig;
    const kv = openStore(cfg);
    const released = await withStore(kv, () => nodeLock(cfg, doing('DEL', ctx))(() => new Allocator(kv, cfg).release(owner(ctx))));
    if (released.length) ctx.log.info('released', { network: cfg.network, containerID: ctx.args.containerID, ifname: ctx.args.ifname, ips: released });
  },

  async check(ctx) {
    const cfg = ctx.conf.ipamConfig;
    const kv = openStore(cfg);
    const held = await withStore(kv, () => new Allocator(kv, cfg).holds(owner(ctx)));
    if (!held.length) {
      throw new CniError(ErrorCode.CheckFailed, `tether-ipam holds no address for ${ctx.args.containerID}/${ctx.args.ifname} on network "${cfg.network}"`, kv.where);
    }
    const prev = ctx.prevResult?.ips?.map((i) => formatIP(parseCIDR(i.address)!.ip)) ?? [];
    const missing = prev.filter((ip) => !held.includes(ip));
    if (missing.length) {
      throw new CniError(ErrorCode.CheckFailed, `prevResult lists ${missing.join(', ')} but tether-ipam holds ${held.join(', ')} for ${ctx.args.containerID}/${ctx.args.ifname}`, kv.where);
    }
  },

  async status(ctx) {
    const cfg = ctx.conf.ipamConfig;
    const kv = openStore(cfg);
    let free: bigint[];
    try {
      free = await withStore(kv, () => new Allocator(kv, cfg).free());
    } catch (e) {
      throw new CniError(ErrorCode.NotAvailable, `tether-ipam cannot use its store: ${(e as Error).message}`, kv.where);
    }
    const full = free.findIndex((n) => n <= 0n);
    if (full >= 0) {
      throw new CniError(ErrorCode.NotAvailable, `tether-ipam has no free address in range set ${describeSet(cfg.ranges[full])} of network "${cfg.network}"`, `ipam.ranges[${full}]`);
    }
  },

  async gc(ctx, valid) {
    for (const [i, a] of valid.entries()) {
      const problem = containerIDProblem(a.containerID) ?? ifnameProblem(a.ifname);
      if (problem) throw invalidConfig(`cni.dev/valid-attachments[${i}]`, `has an invalid container ID or interface name (${problem})`, a);
    }
    const cfg = ctx.conf.ipamConfig;
    const kv = openStore(cfg);
    // CNI GC is exclusive with ADD and DEL (SPEC "Lifecycle"), so no grace period: every attachment of
    // this node outside the valid set goes. Other nodes' attachments are never touched.
    const released = await withStore(kv, () => nodeLock(cfg, `tether-ipam GC of network ${cfg.network}`)(() => new Allocator(kv, cfg).gc({ valid })));
    if (released.length) ctx.log.info('gc released', { network: cfg.network, released });
  },
};
