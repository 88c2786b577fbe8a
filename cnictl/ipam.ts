import { existsSync } from 'node:fs';
import { Allocator, type Allocation } from '../ipam/allocator.js';
import { describeSet, parseIpamConfig, setCapacity, type IpamConfig } from '../ipam/config.js';
import { openStore } from '../ipam/store.js';
import type { NetConf } from '../lib/cni/types.js';
import { cidrContains, parseIP } from '../lib/ip/addr.js';
import { UsageError } from '../lib/argv.js';
import { bridgeConfig, parseVxlanConf } from '../plugins/vxlan/delegate.js';
import { readNodeState } from '../lib/node-state.js';
import type { NetworkList } from './conf.js';
import { table } from './format.js';

const delegatesToTetherIpam = (p: Record<string, unknown>) => (p.ipam as { type?: unknown } | undefined)?.type === 'tether-ipam' || p.type === 'tether-vxlan';

/** Whether a network keeps its addresses in tether-ipam (directly, or through tether-vxlan's generated config). */
export const usesTetherIpam = (list: NetworkList) => list.plugins.some(delegatesToTetherIpam);

/**
 * The tether-ipam configuration of a network: the first plugin in its chain that delegates to tether-ipam.
 * tether-vxlan generates its IPAM section from tetherd's state file at each ADD, so the same is done here.
 */
export function ipamOf(list: NetworkList): IpamConfig {
  let plugin = list.plugins.find(delegatesToTetherIpam);
  if (!plugin) throw new UsageError(`network "${list.name}" does not use tether-ipam (its plugins: ${list.plugins.map((p) => p.type).join(', ')})`);
  if (plugin.type === 'tether-vxlan') {
    const conf = parseVxlanConf({ ...plugin, name: list.name, cniVersion: list.cniVersion } as NetConf);
    const state = readNodeState(conf.stateFile);
    if (!state) throw new Error(`network "${list.name}": tetherd has not published ${conf.stateFile}, so its node subnet (and IPAM store) is unknown`);
    plugin = bridgeConfig(conf, plugin, state);
  }
  return parseIpamConfig({ ...plugin, name: list.name, cniVersion: list.cniVersion } as NetConf);
}

export interface IpamUsage {
  network: string;
  store: string;
  node: string;
  rangeSets: { index: number; ranges: string; used: number; size: number }[];
  blocks: Awaited<ReturnType<Allocator['blockInfo']>>;
  allocations: Allocation[];
}

/** What tether-ipam holds for a network: range sets (used of size), blocks, allocations. */
export async function ipamUsage(list: NetworkList): Promise<IpamUsage> {
  const cfg = ipamOf(list);
  const kv = openStore(cfg);
  try {
    const alloc = new Allocator(kv, cfg);
    const allocations = await alloc.list();
    const blocks = await alloc.blockInfo();
    const rangeSets = cfg.ranges.map((set, i) => {
      const used = allocations.filter((a) => set.some((r) => cidrContains(r.subnet, parseIP(a.ip)!))).length;
      return { index: i, ranges: describeSet(set), used, size: Number(setCapacity(set)) };
    });
    return { network: list.name, store: kv.where, node: cfg.nodeName, rangeSets, blocks, allocations };
  } finally { kv.close(); }
}

export async function ipamList(list: NetworkList, json: boolean): Promise<string> {
  const u = await ipamUsage(list);
  if (json) return JSON.stringify(u, null, 2);
  const head = `network ${u.network}, store ${u.store}, this node ${u.node}\n${u.rangeSets.map((s) => `range set ${s.index}: ${s.ranges}: ${s.used} of ${s.size} in use`).join('\n')}`;
  if (!u.allocations.length) return `${head}\nno allocations`;
  return `${head}\n\n${table(['BLOCK', 'NODE', 'USED'], u.blocks.map((b) => [b.cidr, b.node, `${b.used}/${b.size}`]))}\n\n${table(['ADDRESS', 'CONTAINER', 'IFNAME', 'NODE', 'SINCE'], u.allocations.map((a) => [a.ip, a.containerID, a.ifname, a.node, a.since]))}`;
}

/** Releases one attachment's addresses by hand (for an attachment whose runtime is gone). */
export async function ipamRelease(list: NetworkList, containerID: string, ifname: string): Promise<string[]> {
  const cfg = ipamOf(list);
  const kv = openStore(cfg);
  try {
    return await new Allocator(kv, cfg).release({ containerID, ifname });
  } finally { kv.close(); }
}

export interface IpamGcOptions {
  valid?: { containerID: string; ifname: string }[];
  graceSeconds: number;
  forgetNode?: string;
}

/**
 * `cnictl ipam gc`: this node's attachments whose namespace (recorded at ADD) no longer exists, or that
 * are missing from --valid, are released once older than the grace period; --forget-node retires a node
 * that is gone for good. Unlike CNI GC this may run while containers start, hence the grace period and
 * the conditional release.
 */
export async function ipamGc(list: NetworkList, o: IpamGcOptions): Promise<{ released: Allocation[]; blocksFreed: string[]; blocksKept: string[] }> {
  const cfg = ipamOf(list);
  const kv = openStore(cfg);
  try {
    const alloc = new Allocator(kv, cfg);
    if (o.forgetNode) return await alloc.forgetNode(o.forgetNode);
    const released = await alloc.gc({
      valid: o.valid,
      isStale: (h) => !!h.record.netns && !existsSync(h.record.netns),
      graceMs: o.graceSeconds * 1000,
    });
    return { released, blocksFreed: [], blocksKept: [] };
  } finally { kv.close(); }
}
