import { cidrContains, parseIP } from '../lib/ip/addr.js';
import type { KV } from '../lib/store/kv.js';
import { recordCidr } from './blocks.js';
import { handleId, handleKey, MAX_RETRIES, readableHandle, readBlocks, readBlocksNamed, readHandles, releaseSlots, type Allocation, type Handle } from './records.js';

export interface Retired {
  /** Attachments recorded for the node, released. */
  released: Allocation[];
  /** The node's blocks given back to the pool. */
  blocksFreed: string[];
  /** The node's blocks that stay: other nodes' pods borrowed addresses from them (freed once those go). */
  blocksKept: string[];
}

/**
 * A node that is gone for good: every attachment recorded for it is released and its blocks, once no
 * address in them is held, are deleted so the pool gets them back. Needs no network config (blocks are
 * found by their own CIDRs), so tetherd can do it from the store alone. Each step is one conditional
 * transaction: a handle re-written meanwhile (the node came back and re-added it) is kept, and so is a
 * block anyone allocated from meanwhile. Running it twice, or on two nodes at once, is harmless.
 */
export async function forgetNode(kv: KV, node: string): Promise<Retired> {
  // The pool is listed once to learn which block holds which addresses; each release then re-reads only
  // the blocks its handle names (as Allocator.release does), and the whole pool when they do not hold them all.
  const cidrs = [...(await readBlocks(kv))].map(([key, l]) => ({ key, cidr: recordCidr(l.rec) }));
  const blocksOf = (h: Handle) => [...new Set(h.record.ips.flatMap((s) => {
    const ip = parseIP(s)!;
    return cidrs.filter((c) => cidrContains(c.cidr, ip)).map((c) => c.key);
  }))];
  const released: Allocation[] = [];
  for (const h of await readHandles(kv)) {
    if (h.record.node !== node) continue;
    for (let attempt = 0; attempt < MAX_RETRIES; attempt++) {
      let plan = releaseSlots(handleId(h), await readBlocksNamed(kv, blocksOf(h)));
      if (plan.released.length < h.record.ips.length) plan = releaseSlots(handleId(h), await readBlocks(kv));
      const ok = await kv.txn({ if: [{ key: handleKey(h), version: h.version }, ...plan.conds], put: plan.puts, del: [handleKey(h)] });
      if (ok) {
        for (const ip of plan.released) released.push({ ip, containerID: h.containerID, ifname: h.ifname, node, since: h.record.since });
        break;
      }
      // The handle changed under us: someone (the node itself, back) holds it now.
      if (readableHandle(await kv.get(handleKey(h)))?.since !== h.record.since) break;
    }
  }
  const blocksFreed: string[] = [];
  const blocksKept: string[] = [];
  for (const [key, l] of await readBlocks(kv)) {
    if (l.rec.node !== node) continue;
    if (l.rec.allocations.some((a) => a !== null) || !(await kv.txn({ if: [{ key, version: l.version }], del: [key] }))) blocksKept.push(l.rec.cidr);
    else blocksFreed.push(l.rec.cidr);
  }
  return { released, blocksFreed, blocksKept };
}
