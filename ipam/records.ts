import { CniError, ErrorCode } from '../lib/cni/errors.js';
import { formatIP, parseIP } from '../lib/ip/addr.js';
import type { Entry, KV } from '../lib/store/kv.js';
import { addressAt, blockRecordProblem, recordCidr, type BlockRecord } from './blocks.js';

/**
 * What the IPAM store holds, read and validated: blocks (the truth about who holds which address) and
 * handles (per attachment, naming its addresses). Every reader goes through here, so a record someone
 * else wrote is never taken for absent.
 */

/** Who holds an address: the attachment (container ID, interface name). */
export interface Owner {
  containerID: string;
  ifname: string;
}

export interface Allocation extends Owner {
  ip: string;
  node: string;
  since: string;
}

/** What the store keeps per attachment. netns lets a GC check that the attachment still exists. */
export interface HandleRecord { ips: string[]; since: string; node: string; netns?: string }

export interface Handle extends Owner { record: HandleRecord; version: number }

/** How often a conditional transaction is tried again after losing a race before giving up. */
export const MAX_RETRIES = 64;

export const handleKey = (o: Owner) => `handle/${o.containerID}/${o.ifname}`;
export const handleId = (o: Owner) => `${o.containerID}/${o.ifname}`;

function parseJSON(e: Entry): unknown {
  try { return JSON.parse(e.value); } catch { return undefined; }
}

/** null when a stored value is a handle record this code can use, else what is wrong with it. */
function handleRecordProblem(v: unknown): string | null {
  if (!v || typeof v !== 'object' || Array.isArray(v)) return 'not an object';
  const r = v as Record<string, unknown>;
  if (!Array.isArray(r.ips) || !r.ips.every((ip) => typeof ip === 'string' && parseIP(ip))) return '"ips" is not a list of addresses';
  if (typeof r.since !== 'string' || Number.isNaN(Date.parse(r.since))) return '"since" is not a time';
  if (typeof r.node !== 'string') return '"node" is not a node name';
  if (r.netns !== undefined && typeof r.netns !== 'string') return '"netns" is not a path';
  return null;
}

/** A stored handle's record (parsed once), or what is wrong with it. */
export function readHandle(e: Entry): HandleRecord | { problem: string } {
  const v = parseJSON(e);
  const problem = v === undefined ? 'not JSON' : handleRecordProblem(v);
  return problem ? { problem } : v as HandleRecord;
}

/** The record when it can be read; undefined when absent or damaged (for readers that must go on). */
export function readableHandle(e: Entry | undefined): HandleRecord | undefined {
  const r = e && readHandle(e);
  return r && !('problem' in r) ? r : undefined;
}

/**
 * A record someone else wrote (another version, a person, a bug) that this code cannot read. Never
 * skipped silently: a block read as "absent" could be handed out again. Code 11, naming the key.
 */
export function damaged(where: string, key: string, problem: string): CniError {
  return new CniError(ErrorCode.TryAgainLater, `IPAM store ${where}: ${key} is damaged (${problem}); repair or remove it`, key);
}

export interface Loaded { rec: BlockRecord; version: number }
export function loadedBlock(kv: KV, key: string, e: Entry): Loaded {
  const rec = parseJSON(e);
  const problem = rec === undefined ? 'not JSON' : blockRecordProblem(rec);
  if (problem) throw damaged(kv.where, key, problem);
  return { rec: rec as BlockRecord, version: e.version };
}

/** Every block; code 11 naming the first damaged one. */
export async function readBlocks(kv: KV): Promise<Map<string, Loaded>> {
  const out = new Map<string, Loaded>();
  for (const [k, e] of await kv.range('block/')) out.set(k, loadedBlock(kv, k, e));
  return out;
}

/** Just these blocks (those that exist): a release reads what its handle names, not the whole pool. */
export async function readBlocksNamed(kv: KV, keys: string[]): Promise<Map<string, Loaded>> {
  const out = new Map<string, Loaded>();
  for (const k of keys) {
    const e = await kv.get(k);
    if (e) out.set(k, loadedBlock(kv, k, e));
  }
  return out;
}

/** Every readable handle (a damaged one is left to release, which searches every block for its owner). */
export async function readHandles(kv: KV): Promise<Handle[]> {
  const out: Handle[] = [];
  for (const [k, e] of await kv.range('handle/')) {
    const rest = k.slice('handle/'.length);
    const slash = rest.lastIndexOf('/');
    const record = readableHandle(e);
    if (record) out.push({ containerID: rest.slice(0, slash), ifname: rest.slice(slash + 1), record, version: e.version });
  }
  return out;
}

/** What releasing every slot held by id in these blocks writes, and the versions it depends on. */
export function releaseSlots(id: string, blocks: Map<string, Loaded>) {
  const released: string[] = [];
  const puts: { key: string; value: string }[] = [];
  const conds: { key: string; version: number }[] = [];
  for (const [key, l] of blocks) {
    const cidr = recordCidr(l.rec);
    const before = released.length;
    const allocations = l.rec.allocations.map((a, i) => {
      if (a !== id) return a;
      released.push(formatIP(addressAt(cidr, i)));
      return null;
    });
    if (released.length > before) {
      puts.push({ key, value: JSON.stringify({ ...l.rec, allocations }) });
      conds.push({ key, version: l.version });
    }
  }
  return { released, puts, conds };
}
