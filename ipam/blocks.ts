import { bigIntToIP, cidrContains, formatCIDR, formatIP, ipToBigInt, networkOf, parseIP, type CIDR, type IP } from '../lib/ip/addr.js';
import type { Range, RangeSet } from './config.js';

/**
 * The pool is cut into blocks (a /26 by default for IPv4, /122 for IPv6, never larger than the subnet).
 * A block is the unit a node claims and the unit one allocation writes, so an ADD costs the same with
 * ten addresses in use or ten thousand.
 */
export interface BlockRef {
  cidr: CIDR;
  /** The range (of the configured set) this block lies in. */
  range: Range;
}

/** What the store keeps per block: the claiming node and one slot per address (a handle id, or null). */
export interface BlockRecord {
  cidr: string;
  node: string;
  allocations: (string | null)[];
  /** Where the next search starts: round robin inside the block, so freed addresses are not reused at once. */
  next: number;
  /**
   * Present when the block gives no new address, with why (peer mode: the node no longer owns it, but
   * attachments still hold addresses there; they keep them until DEL, then the block leaves the store).
   */
  closed?: string;
}

/** null when a stored value is a block record this code can use, else what is wrong with it. */
export function blockRecordProblem(v: unknown): string | null {
  if (!v || typeof v !== 'object' || Array.isArray(v)) return 'not an object';
  const r = v as Record<string, unknown>;
  if (typeof r.cidr !== 'string') return '"cidr" is not a string';
  const [base, prefix] = r.cidr.split('/');
  const ip = parseIP(base ?? '');
  const len = Number(prefix);
  if (!ip || !Number.isInteger(len) || len < 0 || len > (ip.family === 4 ? 32 : 128)) return `"cidr" ${JSON.stringify(r.cidr)} is not a CIDR`;
  if (typeof r.node !== 'string' || !r.node) return '"node" is not a node name';
  if (!Array.isArray(r.allocations)) return '"allocations" is not a list';
  const size = blockSizeOf({ ip, prefix: len });
  if (r.allocations.length !== size) return `"allocations" has ${r.allocations.length} slots for a block of ${size}`;
  if (!r.allocations.every((a) => a === null || (typeof a === 'string' && a.includes('/')))) return '"allocations" holds something other than null or "container/ifname"';
  if (r.next !== undefined && (!Number.isInteger(r.next) || (r.next as number) < 0 || (r.next as number) >= size)) return '"next" is not a slot of the block';
  if (r.closed !== undefined && typeof r.closed !== 'string') return '"closed" is not a reason';
  return null;
}

export const blockKey = (cidr: CIDR) => `block/${formatCIDR(cidr).replace('/', '-')}`;

export function blockPrefix(range: Range, blockSize: { v4: number; v6: number }): number {
  const want = range.subnet.ip.family === 4 ? blockSize.v4 : blockSize.v6;
  return Math.max(want, range.subnet.prefix);
}

export function blockSizeOf(cidr: CIDR): number {
  return 2 ** ((cidr.ip.family === 4 ? 32 : 128) - cidr.prefix);
}

/** The blocks of a range set that overlap its allocatable span, in address order. */
export function* blocksOf(set: RangeSet, blockSize: { v4: number; v6: number }): Generator<BlockRef> {
  for (const range of set) {
    const prefix = blockPrefix(range, blockSize);
    const step = 1n << BigInt((range.subnet.ip.family === 4 ? 32 : 128) - prefix);
    const first = ipToBigInt(networkOf({ ip: range.start, prefix }));
    const last = ipToBigInt(range.end);
    for (let at = first; at <= last; at += step) {
      yield { cidr: { ip: bigIntToIP(at, range.subnet.ip.family), prefix }, range };
    }
  }
}

/** The block (of a set) containing ip, if the address is allocatable there. */
export function blockOfIP(set: RangeSet, ip: IP, blockSize: { v4: number; v6: number }): BlockRef | undefined {
  for (const range of set) {
    if (!cidrContains(range.subnet, ip)) continue;
    const v = ipToBigInt(ip);
    if (v < ipToBigInt(range.start) || v > ipToBigInt(range.end)) return undefined;
    const prefix = blockPrefix(range, blockSize);
    return { cidr: { ip: networkOf({ ip, prefix }), prefix }, range };
  }
  return undefined;
}

/** Whether offset i of a block may be handed out: inside the range, not the gateway, not excluded. */
export function usable(b: BlockRef, i: number, exclude: CIDR[]): boolean {
  const v = ipToBigInt(b.cidr.ip) + BigInt(i);
  if (v < ipToBigInt(b.range.start) || v > ipToBigInt(b.range.end)) return false;
  if (v === ipToBigInt(b.range.gateway)) return false;
  if (exclude.length) {
    const ip = bigIntToIP(v, b.cidr.ip.family);
    if (exclude.some((c) => cidrContains(c, ip))) return false;
  }
  return true;
}

export const addressAt = (cidr: CIDR, i: number): IP => bigIntToIP(ipToBigInt(cidr.ip) + BigInt(i), cidr.ip.family);
export const offsetOf = (cidr: CIDR, ip: IP): number => Number(ipToBigInt(ip) - ipToBigInt(cidr.ip));

/** A stored block's CIDR. */
export function recordCidr(rec: BlockRecord): CIDR {
  const [base, prefix] = rec.cidr.split('/');
  return { ip: parseIP(base)!, prefix: Number(prefix) };
}

/** Whether a claimed block belongs to a set: blocks are carved aligned inside a range's subnet. */
export function inSet(set: RangeSet, cidr: CIDR): BlockRef | undefined {
  const range = set.find((r) => cidrContains(r.subnet, cidr.ip));
  return range ? { cidr, range } : undefined;
}

export function emptyBlock(b: BlockRef, node: string): BlockRecord {
  return { cidr: formatCIDR(b.cidr), node, allocations: new Array(blockSizeOf(b.cidr)).fill(null), next: 0 };
}

/** The next usable free offset from the block's cursor, or -1. */
export function freeOffset(b: BlockRef, rec: BlockRecord, exclude: CIDR[]): number {
  const n = rec.allocations.length;
  for (let k = 0; k < n; k++) {
    const i = (rec.next + k) % n;
    if (rec.allocations[i] === null && usable(b, i, exclude)) return i;
  }
  return -1;
}

export const describeBlock = (b: BlockRef) => `${formatCIDR(b.cidr)} (${formatIP(b.range.start)}-${formatIP(b.range.end)})`;
