import type { KV } from '../lib/store/kv.js';
import { handleId, handleKey, readableHandle, readBlocks, readHandles, releaseSlots, type Allocation } from './records.js';

export interface Retired {
  /** Attachments recorded for the node, released. */
  released: Allocation[];
  /** The node's blocks given back to the pool. */
  blocksFreed: string[];
  /** The node's blocks that stay: other nodes' pods borrowed addresses from them (freed once those go). */
  blocksKept: string[];
}

const MAX_RETRIES = 64;

/**
 * A node that is gone for good: every attachment recorded for it is released and its blocks, once no
 * address in them is held, are deleted so the pool gets them back. Needs no network config (every
 * block is searched), so tetherd can do it from the store alone. Each step is one conditional
 * transaction: a handle re-written meanwhile (the node came back and re-added it) is kept, and so is a
 * block anyone allocated from meanwhile. Running it twice, or on two nodes at once, is harmless.
 */
export async function forgetNode(kv: KV, node: string): Promise<Retired> {
  const released: Allocation[] = [];
  for (const h of await readHandles(kv)) {
    if (h.record.node !== node) continue;
    for (let attempt = 0; attempt < MAX_RETRIES; attempt++) {
      const plan = releaseSlots(handleId(h), await readBlocks(kv));
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
