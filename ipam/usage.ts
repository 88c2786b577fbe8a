import { Allocator, type Allocation } from './allocator.js';
import { describeSet, parseIpamConfig, setCapacity, type IpamConfig } from './config.js';
import { openStore } from './store.js';
import { UsageError } from '../lib/argv.js';
import type { NetConf } from '../lib/cni/types.js';
import { cidrContains, parseIP } from '../lib/ip/addr.js';
import type { NetworkList } from '../lib/libcni/conf.js';
import { readNodeState } from '../lib/node-state.js';
import { bridgeConfig, parseVxlanConf } from '../plugins/vxlan/delegate.js';

// What tether-ipam holds for a network, read from outside the plugin: by `cnictl ipam` and `cnictl
// status`, and by tether-metrics for its gauges.

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
