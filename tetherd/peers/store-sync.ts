import { AGENT_HOLD_KEY, AGENT_LEASE_KEY, type AgentLease } from '../../ipam/allocator.js';
import { blockKey, blockRecordProblem, blockSizeOf, type BlockRecord } from '../../ipam/blocks.js';
import { bigIntToIP, formatCIDR, ipToBigInt, parseCIDR, type CIDR } from '../../lib/ip/addr.js';
import type { Entry, KV } from '../../lib/store/kv.js';
import { MAX_RETRIES } from '../../ipam/records.js';

/**
 * The node's embedded IPAM store as the agent keeps it in peer mode: a block record for every block
 * the node owns (tether-ipam allocates there and nowhere else), none for blocks it does not. A block
 * leaves the store only while it is empty, by a transaction conditioned on the version read, so an
 * allocation racing the agent either lands before (the block stays) or fails and retries elsewhere.
 */
export class BlockCutter {
  private readonly base: bigint;
  private readonly step: bigint;
  constructor(readonly pool: CIDR, readonly blockSize: number) {
    this.base = ipToBigInt(pool.ip);
    this.step = 1n << BigInt(32 - blockSize);
  }
  get count(): number { return 2 ** (this.blockSize - this.pool.prefix); }
  cidr(i: number): CIDR { return { ip: bigIntToIP(this.base + BigInt(i) * this.step, 4), prefix: this.blockSize }; }
  /** The index of a stored block's CIDR, or -1 when it is not one of the pool's blocks. */
  index(cidr: string): number {
    const c = parseCIDR(cidr);
    if (!c || c.ip.family !== 4 || c.prefix !== this.blockSize) return -1;
    const off = ipToBigInt(c.ip) - this.base;
    if (off < 0n || off % this.step !== 0n) return -1;
    const i = Number(off / this.step);
    return i < this.count ? i : -1;
  }
}

export interface StoreReport {
  /** Owned blocks with no address in use (they may be given away). */
  empty: number[];
  /** Blocks in the store with addresses in use that the table says are not ours (pods still on them): closed to new addresses. */
  foreign: number[];
  added: number[];
  removed: number[];
  /** Blocks closed (or reopened) by this pass. */
  closed: number[];
  reopened: number[];
}

/** Why a block still in the store gives no new address: tether-ipam's error names it. */
export const NOT_OWNED = 'the ownership table gives this block to another node (reclaimed or moved): its attachments keep their addresses until DEL';

const emptyRecord = (cut: BlockCutter, i: number, node: string): BlockRecord => ({ cidr: formatCIDR(cut.cidr(i)), node, allocations: new Array(blockSizeOf(cut.cidr(i))).fill(null), next: 0 });
const inUse = (r: BlockRecord) => r.allocations.some((a) => a !== null);

/**
 * Makes the store match the table: every owned block present and open, every other block gone, or,
 * while attachments still hold addresses in it, closed (tether-ipam gives no new address there). Each
 * write is conditioned on the version read; one an allocation raced is read again, so no pass ends
 * with a block it found not ours left open.
 */
export async function syncStore(kv: KV, cut: BlockCutter, node: string, owned: Set<number>, hold: string | null, leaseMs: number): Promise<StoreReport> {
  const out: StoreReport = { empty: [], foreign: [], added: [], removed: [], closed: [], reopened: [] };
  const present = new Set<number>();
  for (const [key, first] of await kv.range('block/')) {
    for (let e: Entry | undefined = first, attempt = 0; e && attempt < MAX_RETRIES; e = await kv.get(key), attempt++) {
      let rec: BlockRecord;
      try { rec = JSON.parse(e.value) as BlockRecord; } catch { break; }
      if (blockRecordProblem(rec)) break; // tether-ipam reports a damaged block itself
      const i = cut.index(rec.cidr);
      if (i < 0) break;
      present.add(i);
      const put = async (r: BlockRecord) => kv.txn({ if: [{ key, version: e!.version }], put: [{ key, value: JSON.stringify(r) }] });
      if (owned.has(i) && rec.node === node) {
        if (rec.closed !== undefined) { const { closed: _c, ...open } = rec; if (!(await put(open))) continue; out.reopened.push(i); }
        if (!inUse(rec)) out.empty.push(i);
        break;
      }
      if (owned.has(i)) {
        // Ours by the table, another node's name in the store (the node was renamed, or the store copied): ours if empty.
        if (inUse(rec)) { out.foreign.push(i); break; }
        if (!(await put(emptyRecord(cut, i, node)))) continue;
        out.empty.push(i);
        break;
      }
      if (!inUse(rec)) {
        if (!(await kv.txn({ if: [{ key, version: e.version }], del: [key] }))) continue;
        out.removed.push(i);
        break;
      }
      if (rec.closed === undefined) { if (!(await put({ ...rec, closed: NOT_OWNED }))) continue; out.closed.push(i); }
      out.foreign.push(i);
      break;
    }
  }
  for (const i of owned) {
    if (present.has(i)) continue;
    if (await kv.txn({ if: [{ key: blockKey(cut.cidr(i)), version: 0 }], put: [{ key: blockKey(cut.cidr(i)), value: JSON.stringify(emptyRecord(cut, i, node)) }] })) {
      out.added.push(i); out.empty.push(i);
    }
  }
  const h = await kv.get(AGENT_HOLD_KEY);
  if (hold !== null && h?.value !== hold) await kv.txn({ if: [{ key: AGENT_HOLD_KEY, version: h?.version ?? 0 }], put: [{ key: AGENT_HOLD_KEY, value: hold }] });
  if (hold === null && h) await kv.txn({ if: [{ key: AGENT_HOLD_KEY, version: h.version }], del: [AGENT_HOLD_KEY] });
  // The store matches the table now: the agent's word for the next leaseMs, or taken back while it holds.
  if (hold === null) await renewLease(kv, Date.now(), leaseMs); else await dropLease(kv);
  out.empty.sort((a, b) => a - b);
  return out;
}

/**
 * Renews the agent's word (AGENT_LEASE_KEY) to `ms` from now once half of it is spent: tether-ipam
 * allocates only while it is fresh, so allocation stops by itself within `ms` of the agent dying (one
 * write per half-lease, not per sync). `ms` must stay under the vote silence: nobody can have voted this
 * node dead before the word it last gave runs out.
 */
async function renewLease(kv: KV, now: number, ms: number): Promise<boolean> {
  const e = await kv.get(AGENT_LEASE_KEY);
  let until = 0;
  try { until = e ? Number((JSON.parse(e.value) as AgentLease).until) || 0 : 0; } catch { /* rewritten below */ }
  if (until - now > ms / 2) return false;
  return kv.txn({ if: [{ key: AGENT_LEASE_KEY, version: e?.version ?? 0 }], put: [{ key: AGENT_LEASE_KEY, value: JSON.stringify({ until: now + ms } satisfies AgentLease) }] });
}

/** Takes the agent's word back at once (it holds, or is reclaimed): allocation stops without waiting for it to run out. */
async function dropLease(kv: KV): Promise<void> {
  const e = await kv.get(AGENT_LEASE_KEY);
  if (e) await kv.txn({ if: [{ key: AGENT_LEASE_KEY, version: e.version }], del: [AGENT_LEASE_KEY] });
}

/** Takes blocks out of the store before they are given away: only those still empty (or never written) leave. */
export async function takeOut(kv: KV, cut: BlockCutter, blocks: number[]): Promise<number[]> {
  const gone: number[] = [];
  for (const i of blocks) {
    const key = blockKey(cut.cidr(i));
    const e = await kv.get(key);
    if (!e) { gone.push(i); continue; }
    let rec: BlockRecord;
    try { rec = JSON.parse(e.value) as BlockRecord; } catch { continue; }
    if (blockRecordProblem(rec) || inUse(rec)) continue;
    if (await kv.txn({ if: [{ key, version: e.version }], del: [key] })) gone.push(i);
  }
  return gone;
}
