/**
 * The peer-mode gossip datagram: a fixed header, one typed body, an HMAC-SHA256 trailer (auth.ts).
 * Binary and bounded everywhere: every count and length is checked against what the datagram still
 * holds and against a hard limit before anything is allocated, so a hostile datagram costs at most
 * its own size to reject.
 *
 *   magic "TPG1" | type u8 | sender (u8 len + bytes) | seq u64 | sentAt u64 (ms) | body | mac (32)
 */
export const MAGIC = 0x54504731; // "TPG1"
export const MAC_LEN = 32;
/** Under the 65,507 bytes of one UDP/IPv4 datagram; the state of 1,024 members still fits. */
export const MAX_DATAGRAM = 60_000;
export const MAX_NAME = 253;
export const MAX_MEMBERS = 1024;
export const MAX_RUNS = 4096;
export const MAX_VOTES = 64;
export const MAX_RETIRED = 4096;
/** The pool is cut into at most this many blocks (a /16 in /26 blocks is 1,024). */
export const MAX_BLOCKS = 65_536;
export const HEADER_MIN = 4 + 1 + 1 + 8 + 8;

export const MessageType = { State: 1 } as const;

/** One node's own record: only that node writes it, with a version it alone bumps. */
export interface Member {
  name: string;
  version: number;
  /** The underlay address: gossip goes there, and VXLAN traffic in VXLAN mode. */
  address: string;
  /** The gossip UDP port. */
  port: number;
  /** The VTEP MAC in VXLAN mode (aa:bb:cc:dd:ee:ff), '' otherwise. */
  vtepMAC: string;
  /** Digest of the configured initial peer set ('' when the node joins or is the seed). */
  initial: string;
  /** The node holds an ownership table (split, seeded or received): a fresh node must not split then. */
  hasTable: boolean;
  /** The node left on purpose (its blocks were given away first). */
  left: boolean;
  /** Empty blocks it holds, and how many more it asks for: what donors decide from. */
  free: number;
  wants: number;
  /** Its reclaim votes: one heir per dead node, never changed once cast. */
  votes: Vote[];
}

export interface Vote { dead: string; heir: string }

/** Consecutive blocks [start, start+count) with one owner ('' = nobody) and one version. */
export interface Run { start: number; count: number; owner: string; version: number }

export interface StateMessage {
  type: 'state';
  /** Digest of the network, pool and block size: differently configured agents never merge. */
  config: string;
  blocks: number;
  members: Member[];
  /** Nodes reclaimed for good (a grow-only set). */
  retired: string[];
  table: Run[];
}

export type Message = StateMessage;

export interface Frame { sender: string; seq: bigint; sentAt: number; message: Message }

/** A datagram that is not one of ours, or breaks a limit: dropped and counted as malformed. */
export class WireError extends Error {
  constructor(msg: string) { super(msg); this.name = 'WireError'; }
}

class Writer {
  private buf = Buffer.alloc(1024);
  private at = 0;
  private room(n: number): void {
    if (this.at + n > MAX_DATAGRAM) throw new WireError(`message over ${MAX_DATAGRAM} bytes`);
    if (this.at + n <= this.buf.length) return;
    const b = Buffer.alloc(Math.min(MAX_DATAGRAM, Math.max(this.buf.length * 2, this.at + n)));
    this.buf.copy(b, 0, 0, this.at);
    this.buf = b;
  }
  u8(v: number): void { this.room(1); this.buf.writeUInt8(v, this.at); this.at += 1; }
  u16(v: number): void { this.room(2); this.buf.writeUInt16BE(v, this.at); this.at += 2; }
  u32(v: number): void { this.room(4); this.buf.writeUInt32BE(v, this.at); this.at += 4; }
  u64(v: bigint): void { this.room(8); this.buf.writeBigUInt64BE(v, this.at); this.at += 8; }
  str(s: string, max: number): void {
    const b = Buffer.from(s, 'utf8');
    if (b.length > max) throw new WireError(`string of ${b.length} bytes over ${max}`);
    if (max > 255) this.u16(b.length); else this.u8(b.length);
    this.room(b.length); b.copy(this.buf, this.at); this.at += b.length;
  }
  bytes(): Buffer { return this.buf.subarray(0, this.at); }
}

class Reader {
  at = 0;
  constructor(private readonly b: Buffer) {}
  need(n: number, what: string): void { if (this.at + n > this.b.length) throw new WireError(`truncated at ${what}`); }
  u8(w: string): number { this.need(1, w); return this.b.readUInt8(this.at++); }
  u16(w: string): number { this.need(2, w); const v = this.b.readUInt16BE(this.at); this.at += 2; return v; }
  u32(w: string): number { this.need(4, w); const v = this.b.readUInt32BE(this.at); this.at += 4; return v; }
  u64(w: string): bigint { this.need(8, w); const v = this.b.readBigUInt64BE(this.at); this.at += 8; return v; }
  str(max: number, w: string): string {
    const n = max > 255 ? this.u16(w) : this.u8(w);
    if (n > max) throw new WireError(`${w}: ${n} bytes over ${max}`);
    this.need(n, w);
    const s = this.b.toString('utf8', this.at, this.at + n);
    this.at += n;
    return s;
  }
  count(max: number, minEach: number, w: string, wide = true): number {
    const n = wide ? this.u16(w) : this.u8(w);
    if (n > max) throw new WireError(`${w}: ${n} over the limit of ${max}`);
    this.need(n * minEach, w); // a count the rest cannot hold is rejected before anything is built
    return n;
  }
  done(): void { if (this.at !== this.b.length) throw new WireError(`${this.b.length - this.at} bytes of trailing data`); }
}

const NAME_RE = /^[A-Za-z0-9._-]{1,253}$/;
const MAC_RE = /^$|^[0-9a-f]{2}(:[0-9a-f]{2}){5}$/;
const DIGEST_RE = /^$|^[0-9a-f]{16}$/;
const IP_RE = /^[0-9a-fA-F.:]{2,45}$/;

function name(r: Reader, w: string, allowEmpty = false): string {
  const s = r.str(MAX_NAME, w);
  if (!(allowEmpty && s === '') && !NAME_RE.test(s)) throw new WireError(`${w}: ${JSON.stringify(s.slice(0, 40))} is not a node name`);
  return s;
}

function checked(re: RegExp, s: string, w: string): string {
  if (!re.test(s)) throw new WireError(`${w}: ${JSON.stringify(s.slice(0, 40))} is malformed`);
  return s;
}

function writeMember(w: Writer, m: Member): void {
  w.str(m.name, MAX_NAME); w.u32(m.version); w.str(m.address, 45); w.u16(m.port); w.str(m.vtepMAC, 17); w.str(m.initial, 16);
  w.u8((m.hasTable ? 1 : 0) | (m.left ? 2 : 0)); w.u32(m.free); w.u32(m.wants);
  if (m.votes.length > MAX_VOTES) throw new WireError(`${m.votes.length} votes over ${MAX_VOTES}`);
  w.u8(m.votes.length);
  for (const v of m.votes) { w.str(v.dead, MAX_NAME); w.str(v.heir, MAX_NAME); }
}

function readMember(r: Reader): Member {
  const m: Member = {
    name: name(r, 'member name'), version: r.u32('member version'), address: checked(IP_RE, r.str(45, 'address'), 'address'), port: r.u16('port'),
    vtepMAC: checked(MAC_RE, r.str(17, 'vtepMAC'), 'vtepMAC'), initial: checked(DIGEST_RE, r.str(16, 'initial'), 'initial'),
    hasTable: false, left: false, free: 0, wants: 0, votes: [],
  };
  const flags = r.u8('flags');
  if (flags & ~3) throw new WireError(`member flags 0x${flags.toString(16)} unknown`);
  m.hasTable = (flags & 1) !== 0; m.left = (flags & 2) !== 0;
  m.free = r.u32('free'); m.wants = r.u32('wants');
  if (m.free > MAX_BLOCKS || m.wants > MAX_BLOCKS) throw new WireError('free/wants over the block limit');
  const n = r.count(MAX_VOTES, 4, 'votes', false);
  for (let i = 0; i < n; i++) m.votes.push({ dead: name(r, 'vote dead'), heir: name(r, 'vote heir') });
  return m;
}

function writeState(w: Writer, s: StateMessage): void {
  w.str(s.config, 16); w.u32(s.blocks);
  if (s.members.length > MAX_MEMBERS) throw new WireError(`${s.members.length} members over ${MAX_MEMBERS}`);
  w.u16(s.members.length); for (const m of s.members) writeMember(w, m);
  if (s.retired.length > MAX_RETIRED) throw new WireError(`${s.retired.length} retired over ${MAX_RETIRED}`);
  w.u16(s.retired.length); for (const n of s.retired) w.str(n, MAX_NAME);
  // Owners are written once and runs refer to them by index: a table of 100 runs names its 10 owners once.
  const owners = [...new Set(s.table.map((x) => x.owner))];
  if (owners.length > MAX_MEMBERS + MAX_RETIRED) throw new WireError('too many owners');
  w.u16(owners.length); for (const o of owners) w.str(o, MAX_NAME);
  if (s.table.length > MAX_RUNS) throw new WireError(`${s.table.length} runs over ${MAX_RUNS}`);
  w.u16(s.table.length);
  for (const x of s.table) { w.u32(x.start); w.u32(x.count); w.u16(owners.indexOf(x.owner)); w.u32(x.version); }
}

function readState(r: Reader): StateMessage {
  const config = checked(DIGEST_RE, r.str(16, 'config'), 'config');
  const blocks = r.u32('blocks');
  if (blocks < 1 || blocks > MAX_BLOCKS) throw new WireError(`${blocks} blocks outside 1-${MAX_BLOCKS}`);
  const members: Member[] = [];
  const seen = new Set<string>();
  for (let i = 0, n = r.count(MAX_MEMBERS, 23, 'members'); i < n; i++) {
    const m = readMember(r);
    if (seen.has(m.name)) throw new WireError(`member ${m.name} twice`);
    seen.add(m.name); members.push(m);
  }
  const retired: string[] = [];
  for (let i = 0, n = r.count(MAX_RETIRED, 2, 'retired'); i < n; i++) retired.push(name(r, 'retired'));
  const owners: string[] = [];
  for (let i = 0, n = r.count(MAX_MEMBERS + MAX_RETIRED, 1, 'owners'); i < n; i++) owners.push(name(r, 'owner', true));
  const table: Run[] = [];
  let next = 0;
  for (let i = 0, n = r.count(MAX_RUNS, 14, 'runs'); i < n; i++) {
    const start = r.u32('run start'); const count = r.u32('run count'); const oi = r.u16('run owner'); const version = r.u32('run version');
    if (oi >= owners.length) throw new WireError(`run owner index ${oi} of ${owners.length}`);
    // Runs are in order, disjoint and inside the pool: a table is never ambiguous about a block.
    if (start < next || count < 1 || start + count > blocks) throw new WireError(`run ${start}+${count} out of order or outside ${blocks} blocks`);
    if ((owners[oi] === '') !== (version === 0)) throw new WireError('an unowned run has a version, or an owned run none');
    next = start + count;
    table.push({ start, count, owner: owners[oi], version });
  }
  return { type: 'state', config, blocks, members, retired, table };
}

/** The signed part of a datagram (everything but the MAC). */
export function encodeBody(f: Frame): Buffer {
  const w = new Writer();
  w.u32(MAGIC);
  w.u8(MessageType.State);
  w.str(f.sender, MAX_NAME);
  w.u64(f.seq);
  w.u64(BigInt(f.sentAt));
  writeState(w, f.message);
  if (w.bytes().length + MAC_LEN > MAX_DATAGRAM) throw new WireError(`message over ${MAX_DATAGRAM} bytes`);
  return Buffer.from(w.bytes());
}

/** Decodes the signed part (the MAC already checked and cut off). */
export function decodeBody(b: Buffer): Frame {
  if (b.length < HEADER_MIN) throw new WireError(`${b.length} bytes is shorter than a header`);
  const r = new Reader(b);
  if (r.u32('magic') !== MAGIC) throw new WireError('not a tether peer message (magic)');
  const type = r.u8('type');
  if (type !== MessageType.State) throw new WireError(`unknown message type ${type}`);
  const sender = name(r, 'sender');
  const seq = r.u64('seq');
  const sentAt = r.u64('sentAt');
  if (sentAt > BigInt(Number.MAX_SAFE_INTEGER)) throw new WireError('sentAt out of range');
  const message = readState(r);
  r.done();
  return { sender, seq, sentAt: Number(sentAt), message };
}
