import { existsSync } from 'node:fs';
import { Allocator, type Allocation } from '../ipam/allocator.js';
import { openStore } from '../ipam/store.js';
import { ipamOf, ipamUsage } from '../ipam/usage.js';
import type { NetworkList } from '../lib/libcni/conf.js';
import { table } from './format.js';

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
