import { resolve } from 'node:path';
import { parseCniArgs } from '../lib/cni/args.js';
import { formatResult } from '../lib/cni/result.js';
import { createNamedNetns, deleteNamedNetns, listNamedNetns, netnsPath } from '../lib/netns/netns.js';
import { nodeCrypto } from '../lib/builtin.js';
import { str, UsageError, type Parsed } from '../lib/argv.js';
import { listCache } from '../lib/libcni/cache.js';
import { loadNetworkList, scanConfDir } from '../lib/libcni/conf.js';
import { describeResult, table } from './format.js';
import { CniRuntime, type AttachmentSpec } from '../lib/libcni/runtime.js';
import { DEFAULT_AGENT_STATE_FILE } from '../lib/paths.js';
import type { Ctx } from './context.js';

// The command implementations, loaded only once cnictl knows it has real work to do.

/** cnitool's rule, with our prefix: a stable ID from the namespace path, so detach finds what attach made. */
export function defaultContainerID(netns: string): string {
  return `cnictl-${nodeCrypto().createHash('sha512').update(resolve(netns)).digest('hex').slice(0, 20)}`;
}

function attachment(c: Ctx, netnsArg: string): AttachmentSpec {
  const netns = netnsPath(netnsArg);
  let capabilityArgs: Record<string, unknown> | undefined;
  const cap = str(c.p, 'cap-args') ?? process.env.CAP_ARGS;
  if (cap) {
    try { capabilityArgs = JSON.parse(cap) as Record<string, unknown>; } catch (e) {
      throw new UsageError(`--cap-args must be a JSON object: ${(e as Error).message}`);
    }
  }
  return {
    containerID: str(c.p, 'container-id') ?? defaultContainerID(netns),
    netns,
    ifname: str(c.p, 'ifname') ?? process.env.CNI_IFNAME ?? 'eth0',
    args: parseCniArgs(str(c.p, 'args') ?? process.env.CNI_ARGS),
    capabilityArgs,
  };
}

/** <network> <netns> of attach/detach/check: the loaded list and the attachment to act on. */
function target(c: Ctx): { net: string; list: ReturnType<typeof loadNetworkList>; a: AttachmentSpec } {
  const [net, ns] = need(c, 2, '<network> <netns>');
  return { net, list: loadNetworkList(c.confDir, net), a: attachment(c, ns) };
}

function need(c: Ctx, n: number, what: string): string[] {
  const rest = c.p.positional.slice(1);
  if (rest.length < n) throw new UsageError(`${c.p.positional[0]} needs ${what}`);
  return rest;
}

/** --valid ID/IFNAME,ID/IFNAME (absent: undefined, which GC reads as "nothing is known to be valid"). */
function validList(arg: string | undefined): { containerID: string; ifname: string }[] | undefined {
  return arg === undefined ? undefined : arg.split(',').filter(Boolean).map((v) => {
    const [containerID, ifname] = v.split('/');
    if (!containerID || !ifname) throw new UsageError(`--valid entries are ID/IFNAME, got ${JSON.stringify(v)}`);
    return { containerID, ifname };
  });
}

export async function run(c: Ctx): Promise<number> {
  const [cmd] = c.p.positional;
  switch (cmd) {
    case 'attach': {
      const { net, list, a } = target(c);
      const result = await c.runtime.add(list, a);
      if (c.json) c.out(JSON.stringify(formatResult(result, c.runtime.version(list)), null, 2));
      else c.out(`attached ${a.netns} to ${net} as ${a.ifname} (container ${a.containerID})\n${describeResult(result)}`);
      return 0;
    }
    case 'detach': {
      const { net, list, a } = target(c);
      await c.runtime.del(list, a);
      c.out(c.json ? JSON.stringify({ detached: { network: net, containerID: a.containerID, ifname: a.ifname } }) : `detached ${a.containerID}/${a.ifname} from ${net}`);
      return 0;
    }
    case 'check': {
      const { net, list, a } = target(c);
      await c.runtime.check(list, a);
      c.out(c.json ? JSON.stringify({ ok: true, disableCheck: list.disableCheck }) : list.disableCheck ? `${net}: disableCheck is set; nothing checked` : `${a.containerID}/${a.ifname} on ${net}: ok`);
      return 0;
    }
    case 'status': {
      if (c.p.positional.length < 2) {
        const { nodeStatus, formatNodeStatus } = await import('./status.js');
        const s = await nodeStatus({ confDir: c.confDir, cacheDir: c.runtime.opts.cacheDir, agentState: str(c.p, 'agent-state') ?? DEFAULT_AGENT_STATE_FILE, dockerState: str(c.p, 'docker-state') });
        c.out(c.json ? JSON.stringify(s, null, 2) : formatNodeStatus(s));
        return 0;
      }
      const [net] = need(c, 1, '<network>');
      const list = loadNetworkList(c.confDir, net);
      await c.runtime.status(list);
      c.out(c.json ? JSON.stringify({ network: net, ready: true }) : `${net}: ready`);
      return 0;
    }
    case 'gc': {
      if (c.p.flags.has('docker')) {
        const { reconcileDocker } = await import('./docker-gc.js');
        const grace = str(c.p, 'grace');
        const r = await reconcileDocker({ dockerHost: str(c.p, 'docker-host'), driverSocket: str(c.p, 'driver-socket'), ...(grace !== undefined ? { graceMs: Number(grace) * 1000 } : {}) });
        if (c.json) c.out(JSON.stringify(r));
        else c.out(`docker: removed ${r.RemovedEndpoints.length} endpoint(s) Docker no longer has, ${r.RemovedVeths.length} stray veth(s), released ${r.ReleasedAddresses.length} address(es)${r.ReleasedAddresses.map((a) => `\n  ${a}`).join('')}`);
        return 0;
      }
      const [net] = need(c, 1, '<network>');
      const list = loadNetworkList(c.confDir, net);
      const { deleted, errors } = await c.runtime.gc(list, validList(str(c.p, 'valid')));
      if (c.json) c.out(JSON.stringify({ deleted, errors: errors.map((e) => e.message) }));
      else {
        c.out(`${net}: removed ${deleted.length} stale attachment(s)${deleted.map((d) => `\n  ${d.containerID}/${d.ifname}`).join('')}`);
        for (const e of errors) c.out(`  error: ${e.message}`);
      }
      return errors.length ? 1 : 0;
    }
    case 'list': {
      const net = c.p.positional[1];
      const entries = listCache(c.runtime.opts.cacheDir, net);
      if (c.json) {
        c.out(JSON.stringify({ attachments: entries.map((e) => ({ network: e.networkName, containerID: e.containerId, ifname: e.ifName, netns: e.netns ?? '', ips: ((e.result.ips ?? []) as { address: string }[]).map((i) => i.address) })) }, null, 2));
      } else if (!entries.length) {
        c.out(`no attachments in ${c.runtime.opts.cacheDir}/results${net ? ` for ${net}` : ''}`);
      } else {
        c.out(table(['NETWORK', 'CONTAINER', 'IFNAME', 'NETNS', 'ADDRESSES'], entries.map((e) => [
          e.networkName, e.containerId, e.ifName, e.netns ?? '', ((e.result.ips ?? []) as { address: string }[]).map((i) => i.address).join(','),
        ])));
      }
      return 0;
    }
    case 'networks': {
      const files = scanConfDir(c.confDir);
      if (c.json) c.out(JSON.stringify({ networks: files.map((f) => ({ file: f.file, name: f.list?.name, cniVersion: f.list?.cniVersion, plugins: f.list?.plugins.map((p) => p.type), error: f.error })) }, null, 2));
      else c.out(files.length ? table(['NAME', 'VERSION', 'PLUGINS', 'FILE'], files.map((f) => [f.list?.name ?? '(invalid)', f.list?.cniVersion ?? '', f.list ? f.list.plugins.map((p) => p.type).join(' -> ') : f.error ?? '', f.file])) : `no configurations in ${c.confDir}`);
      return 0;
    }
    case 'version': {
      const [plugin] = need(c, 1, '<plugin>');
      const v = await c.runtime.versionInfo(plugin);
      c.out(c.json ? JSON.stringify(v) : `${plugin}: ${v.supportedVersions.join(', ')}`);
      return 0;
    }
    case 'netns': {
      const [sub, name] = c.p.positional.slice(1);
      if (sub === 'ls' || sub === 'list') {
        const names = listNamedNetns();
        c.out(c.json ? JSON.stringify({ netns: names }) : names.join('\n'));
        return 0;
      }
      if (!name || (sub !== 'add' && sub !== 'del')) throw new UsageError('netns add|del <name> | netns ls');
      if (sub === 'add') c.out(createNamedNetns(name));
      else if (!deleteNamedNetns(name)) c.out(`${name}: no such namespace`);
      return 0;
    }
    case 'ipam': {
      const [sub, net, id] = c.p.positional.slice(1);
      if (!net || !['ls', 'release', 'gc'].includes(sub) || (sub === 'release' && !id)) throw new UsageError('ipam ls <network> | ipam release <network> <container-id> [--ifname eth0] | ipam gc <network> [--valid ID/IFNAME,...] [--grace SEC] [--forget-node NAME]');
      const list = loadNetworkList(c.confDir, net);
      const { ipamList, ipamRelease, ipamGc } = await import('./ipam.js');
      if (sub === 'ls') { c.out(await ipamList(list, c.json)); return 0; }
      if (sub === 'gc') {
        const grace = Number(str(c.p, 'grace') ?? 60);
        if (!(grace >= 0)) throw new UsageError('--grace takes a number of seconds');
        const r = await ipamGc(list, { valid: validList(str(c.p, 'valid')), graceSeconds: grace, forgetNode: str(c.p, 'forget-node') });
        if (c.json) c.out(JSON.stringify(r));
        else c.out(`${net}: released ${r.released.length} address(es)${r.released.map((a) => `\n  ${a.ip} ${a.containerID}/${a.ifname}`).join('')}${r.blocksFreed.length ? `\nfreed blocks ${r.blocksFreed.join(', ')}` : ''}${r.blocksKept.length ? `\nkept blocks ${r.blocksKept.join(', ')} (other nodes' pods hold addresses in them; run it again once they are gone)` : ''}`);
        return 0;
      }
      const ifname = str(c.p, 'ifname') ?? 'eth0';
      const released = await ipamRelease(list, id, ifname);
      c.out(c.json ? JSON.stringify({ released }) : released.length ? `released ${released.join(', ')} held by ${id}/${ifname}` : `${id}/${ifname} held no address on ${net}`);
      return 0;
    }
    case 'install':
    case 'uninstall': {
      const { runInstall } = await import('./install-cmd.js');
      return runInstall(c, cmd);
    }
    case 'bgp': {
      const sub = c.p.positional[1];
      if (sub !== 'peers' && sub !== 'routes') throw new UsageError('bgp peers | bgp routes [--bgp-status FILE]');
      const { bgpShow } = await import('./bgp.js');
      c.out(bgpShow(sub, { file: str(c.p, 'bgp-status'), json: c.json }));
      return 0;
    }
    case 'peers': {
      const [sub, node] = c.p.positional.slice(1);
      if (sub !== 'reclaim' || !node) throw new UsageError('peers reclaim <node> [--agent-config FILE]');
      const { peersReclaim, DEFAULT_AGENT_CONFIG } = await import('./peers.js');
      return peersReclaim(node, { agentConfig: str(c.p, 'agent-config') ?? DEFAULT_AGENT_CONFIG, timeoutMs: c.runtime.opts.timeoutMs, out: c.out });
    }
    case 'conformance': {
      const [net] = need(c, 1, '<network>');
      const { runConformanceCli } = await import('../conformance/cli.js');
      return runConformanceCli({ network: net, confDir: c.confDir, path: c.runtime.opts.path, report: str(c.p, 'report'), json: c.json, skipDataplane: c.p.flags.has('skip-dataplane'), only: str(c.p, 'only') });
    }
    default:
      throw new UsageError(cmd ? `unknown command "${cmd}"` : 'no command given');
  }
}

export function makeRuntime(o: { path: string[]; cacheDir: string; timeoutMs: number }): CniRuntime {
  return new CniRuntime(o);
}
