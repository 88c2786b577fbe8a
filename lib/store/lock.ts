import { closeSync, constants, mkdirSync, openSync, readFileSync, readSync, writeSync } from 'node:fs';
import { getPriority, setPriority } from 'node:os';
import { dirname } from 'node:path';
import { sys } from '../sys/index.js';
import { F_UNLCK, F_WRLCK, IN_CLOSE_WRITE, LOCK_EX } from '../sys/types.js';
import { StoreUnavailableError } from './kv.js';

/**
 * A node-local lock for many processes that queue in arrival order, wait without polling, and give up
 * only when the queue has stopped moving: never because a clock ran out while the holder was working.
 *
 * One file per lock:
 *   [0, 8)                 the ticket counter, changed under a byte-range lock on [0, 1)
 *   [8, 16)                the ticket of the current holder
 *   SLOTS + SLOT * (t % N) ticket t's slot: pid, heartbeat, since when, what for (for waiters and people)
 *   QUEUE + t              byte t of the queue, locked by ticket t from arrival until release
 *
 * Ticket t holds its queue byte while it waits and while it holds; it holds the lock once no byte
 * below its own is locked, so every waiter ahead has finished or died. The bytes are open-file-
 * description locks: the kernel drops them when their process dies, so a waiter takes over only from
 * a dead holder (a killed -9 one included) and needs no clean-up. A waiter sleeps in poll(2) on an
 * inotify watch of the file's closes: each release and each death is a close, so it wakes at once.
 */

const COUNTER = 0;
const HEAD = 8;
const SLOTS = 4096;
const SLOT = 128;
const NSLOTS = 1024;
const QUEUE = 2 ** 32;
const WHAT_BYTES = SLOT - 32;

/** How often a holder shows it is alive, and how often a waiter looks at the holder. */
const HEARTBEAT_MS = 250;
const LOOK_MS = 500;
/** The holder's nice value (a little ahead of the default 0, far from real-time). */
const HOLDER_PRIORITY = -10;
/** Boosted holds of this process, and its priority before the first. */
let boosts = 0;
let priorityBefore: number | undefined;
/** How many of the first in line listen for releases; the others sleep in slices until they are among them. */
const LISTENERS = 8;
const pause = new Int32Array(new SharedArrayBuffer(4));
const sleepMs = (ms: number) => { Atomics.wait(pause, 0, 0, ms); };
/** An asynchronous waiter sleeps in shorter slices, so the rest of its process keeps running between them. */
const ASYNC_SLICE_MS = 50;
/**
 * With no sign of progress for this long (no heartbeat, no CPU time used, no ticket served) the queue
 * is stuck: a stopped or wedged process. Load does not get here: a live holder beats every 250 ms.
 */
export const DEFAULT_STUCK_MS = 30_000;

export interface LockOptions {
  /** What the holder is doing, shown to waiters and in errors ("ADD 8c2f.../eth0"). */
  what?: string;
  /** No progress for this long: give up with a StoreUnavailableError naming the holder. */
  stuckMs?: number;
  /**
   * Also hold flock(2) on the file while holding (blocking): exclusion with earlier tether versions,
   * which locked with flock alone. Never contended unless such a process runs.
   */
  flock?: boolean;
  /** Run at a higher priority while holding (see Ticket.boost): for locks a burst of short-lived processes queues on. */
  boost?: boolean;
}

export interface Holder {
  ticket: number;
  pid: number;
  state: 'waiting' | 'holding';
  /** Since when it waits or holds (ms since the epoch). */
  since: number;
  heartbeat: number;
  what: string;
}

const slotOffset = (ticket: number) => SLOTS + SLOT * (ticket % NSLOTS);

function readU64(fd: number, at: number): number {
  const b = Buffer.alloc(8);
  return readSync(fd, b, 0, 8, at) === 8 ? Number(b.readBigUInt64LE()) : 0;
}

function writeU64(fd: number, at: number, v: number): void {
  const b = Buffer.alloc(8);
  b.writeBigUInt64LE(BigInt(v));
  writeSync(fd, b, 0, 8, at);
}

function writeSlot(fd: number, h: Holder): void {
  const b = Buffer.alloc(SLOT);
  b.writeUInt32LE(h.pid, 0);
  b.writeUInt32LE(h.heartbeat >>> 0, 4);
  b.writeDoubleLE(h.since, 8);
  b.writeUInt8(h.state === 'holding' ? 2 : 1, 16);
  b.writeDoubleLE(h.ticket, 24);
  b.write(h.what.slice(0, WHAT_BYTES), 32, WHAT_BYTES, 'utf8');
  writeSync(fd, b, 0, SLOT, slotOffset(h.ticket));
}

function readSlot(fd: number, ticket: number): Holder | undefined {
  const b = Buffer.alloc(SLOT);
  if (readSync(fd, b, 0, SLOT, slotOffset(ticket)) !== SLOT) return undefined;
  if (b.readDoubleLE(24) !== ticket) return undefined; // the slot was reused by a later ticket, or never written
  const what = b.subarray(32);
  return {
    ticket, pid: b.readUInt32LE(0), heartbeat: b.readUInt32LE(4), since: b.readDoubleLE(8),
    state: b.readUInt8(16) === 2 ? 'holding' : 'waiting', what: what.subarray(0, Math.max(0, what.indexOf(0) < 0 ? what.length : what.indexOf(0))).toString(),
  };
}

/** CPU time a process has used (clock ticks), or undefined once it is gone. */
function cpuTicks(pid: number): number | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return Number(f[11]) + Number(f[12]); // utime, stime (fields 14 and 15)
  } catch { return undefined; }
}

/** Is any ticket before mine still queued? (A zero length would mean "to the end of the file".) */
const anyAhead = (fd: number, mine: number) => mine > 0 && sys.rangeConflict(fd, QUEUE, mine) !== undefined;

/** The earliest ticket still in the queue before mine: the holder, or the waiter about to be. */
function firstAhead(fd: number, mine: number): number | undefined {
  if (!anyAhead(fd, mine)) return undefined;
  for (let t = Math.min(readU64(fd, HEAD), mine - 1); t < mine; t++) {
    if (sys.rangeConflict(fd, QUEUE + t, 1)) return t;
  }
  // The head moved on while we looked; whoever is ahead is at a later ticket than we read.
  const c = sys.rangeConflict(fd, QUEUE, mine);
  return c ? c.start - QUEUE : undefined;
}

/** Progress is any change in who is first, their heartbeat or their CPU time. */
class ProgressWatch {
  private sign = '';
  private since = Date.now();
  constructor(private readonly stuckMs: number, private readonly path: string) {}

  look(fd: number, mine: number): void {
    const first = firstAhead(fd, mine);
    if (first === undefined) return;
    const slot = readSlot(fd, first);
    const sign = `${first}:${slot?.heartbeat ?? '-'}:${slot ? cpuTicks(slot.pid) ?? '-' : '-'}`;
    const now = Date.now();
    if (sign !== this.sign) { this.sign = sign; this.since = now; return; }
    if (now - this.since < this.stuckMs) return;
    const who = slot
      ? `pid ${slot.pid}${slot.what ? ` (${slot.what})` : ''}, ${slot.state === 'holding' ? 'holding it' : 'waiting ahead'} for ${((now - slot.since) / 1000).toFixed(1)} s`
      : `ticket ${first} (no record of who)`;
    throw new StoreUnavailableError(`${this.path} is stuck: ${who}, with no sign of progress for ${((now - this.since) / 1000).toFixed(1)} s`);
  }
}

/** One acquisition: the open file, my ticket, and my heartbeat while I hold. */
class Ticket {
  private inotify?: number;
  private noInotify = false;
  private boosted = false;
  private beat?: ReturnType<typeof setInterval>;
  private slot!: Holder;
  readonly ticket: number;

  constructor(readonly fd: number, what: string) {
    // Taking a ticket is a read and a write under a byte lock held for microseconds.
    sys.rangeLock(fd, F_WRLCK, COUNTER, 1, true);
    try {
      this.ticket = readU64(fd, COUNTER);
      writeU64(fd, COUNTER, this.ticket + 1);
      sys.rangeLock(fd, F_WRLCK, QUEUE + this.ticket, 1, false);
    } finally { sys.rangeLock(fd, F_UNLCK, COUNTER, 1, false); }
    this.slot = { ticket: this.ticket, pid: process.pid, state: 'waiting', since: Date.now(), heartbeat: 0, what };
    writeSlot(fd, this.slot);
  }

  /**
   * Waits for my turn for at most sliceMs; true once I hold the lock. The first few in line sleep on an
   * inotify watch and wake at the release; inotify instances are few per user (128 by default), so the
   * rest sleep in short slices until they are near the front (a ticket never loses its place).
   */
  waitSlice(sliceMs: number): boolean {
    if (!anyAhead(this.fd, this.ticket)) return true;
    const position = this.ticket - readU64(this.fd, HEAD);
    if (this.inotify === undefined && position <= LISTENERS && !this.noInotify) {
      try {
        this.inotify = sys.inotifyInit();
        sys.inotifyAddWatch(this.inotify, `/proc/self/fd/${this.fd}`, IN_CLOSE_WRITE);
      } catch {
        // Out of inotify instances (other programs use them too): this waiter sleeps in slices instead.
        if (this.inotify !== undefined) closeSync(this.inotify);
        this.inotify = undefined;
        this.noInotify = true;
      }
      // Watch first, then look again: a release between the two looks still wakes us.
      if (!anyAhead(this.fd, this.ticket)) return true;
    }
    if (this.inotify === undefined) {
      sleepMs(Math.min(sliceMs, Math.max(1, position - LISTENERS)));
    } else if (sys.waitReadable(this.inotify, sliceMs)) {
      const drain = Buffer.alloc(4096);
      try { while (readSync(this.inotify, drain) > 0); } catch { /* EAGAIN: drained */ }
    }
    return !anyAhead(this.fd, this.ticket);
  }

  hold(heartbeat: boolean, boost = false): void {
    if (this.inotify !== undefined) { closeSync(this.inotify); this.inotify = undefined; }
    if (boost) this.boost();
    writeU64(this.fd, HEAD, this.ticket);
    this.slot = { ...this.slot, state: 'holding', since: Date.now() };
    writeSlot(this.fd, this.slot);
    if (heartbeat) {
      this.beat = setInterval(() => { this.slot.heartbeat++; try { writeSlot(this.fd, this.slot); } catch { /* closed */ } }, HEARTBEAT_MS);
      this.beat.unref?.();
    }
  }

  /**
   * While it holds, the holder runs ahead of the processes still starting up beside it: in a burst of
   * ADDs every waiter sleeps, but each new exec's start-up competes for the CPU, and a holder that gets
   * 1/Nth of it makes the whole queue wait N times longer. Needs CAP_SYS_NICE (CNI plugins run as root);
   * without it nothing changes.
   */
  private boost(): void {
    this.boosted = true;
    if (boosts++ > 0) return;
    try {
      priorityBefore = getPriority(0);
      if (priorityBefore > HOLDER_PRIORITY) setPriority(0, HOLDER_PRIORITY);
    } catch { priorityBefore = undefined; }
  }

  /** Closing the file drops my queue byte, and the close wakes every waiter. */
  close(): void {
    // The last of this process's boosted holds puts the priority back (holds of other locks overlap).
    if (this.boosted && --boosts === 0 && priorityBefore !== undefined) { try { setPriority(0, priorityBefore); } catch { /* as it was */ } }
    if (this.beat) clearInterval(this.beat);
    if (this.inotify !== undefined) closeSync(this.inotify);
    closeSync(this.fd);
  }
}

/** Read-write without O_APPEND: the counter and slots are written in place. */
function openLockFile(path: string): number {
  const flags = constants.O_RDWR | constants.O_CREAT;
  try {
    try { return openSync(path, flags, 0o600); } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
    }
    mkdirSync(dirname(path), { recursive: true, mode: 0o700 });
    return openSync(path, flags, 0o600);
  } catch (e) {
    throw new StoreUnavailableError(`cannot open lock ${path}: ${(e as Error).message}`);
  }
}

function enqueue(path: string, o: LockOptions): Ticket {
  const fd = openLockFile(path);
  try { return new Ticket(fd, o.what ?? ''); } catch (e) {
    closeSync(fd);
    if (e instanceof StoreUnavailableError) throw e;
    throw new StoreUnavailableError(`cannot queue on lock ${path}: ${(e as Error).message}`);
  }
}

function flockBlocking(fd: number): void {
  while (!sys.flock(fd, LOCK_EX)) { /* EINTR: again */ }
}

// Callers in one process queue on a promise chain first: the byte locks belong to open files, so two
// of ours would queue correctly, but one waiting synchronously would stall the one holding.
const inProcess = new Map<string, Promise<unknown>>();

/** Runs fn holding the lock at path (see above); waits between slices let this process's timers run. */
export async function withFileLock<T>(path: string, fn: () => Promise<T>, o: LockOptions = {}): Promise<T> {
  const prev = inProcess.get(path) ?? Promise.resolve();
  let done!: () => void;
  const mine = new Promise<void>((r) => { done = r; });
  const tail = prev.then(() => mine);
  inProcess.set(path, tail);
  await prev;
  try {
    const t = enqueue(path, o);
    try {
      const progress = new ProgressWatch(o.stuckMs ?? DEFAULT_STUCK_MS, path);
      for (let looked = Date.now(); !t.waitSlice(ASYNC_SLICE_MS);) {
        if (Date.now() - looked >= LOOK_MS) { progress.look(t.fd, t.ticket); looked = Date.now(); }
        await new Promise((r) => setImmediate(r));
      }
      t.hold(true, o.boost);
      if (o.flock) flockBlocking(t.fd);
      return await fn();
    } finally { t.close(); }
  } finally {
    done();
    if (inProcess.get(path) === tail) inProcess.delete(path);
  }
}

/** The same lock for synchronous work (the embedded store's transactions, which last milliseconds). */
export function withFileLockSync<T>(path: string, fn: () => T, o: LockOptions = {}): T {
  if (inProcess.has(path)) throw new StoreUnavailableError(`${path} is held by an asynchronous caller in this process`);
  const t = enqueue(path, o);
  try {
    const progress = new ProgressWatch(o.stuckMs ?? DEFAULT_STUCK_MS, path);
    while (!t.waitSlice(LOOK_MS)) progress.look(t.fd, t.ticket);
    t.hold(false, o.boost);
    if (o.flock) flockBlocking(t.fd);
    return fn();
  } finally { t.close(); }
}

/** Who holds the lock and who waits, in ticket order (for cnictl and error messages). */
export function lockQueue(path: string): Holder[] {
  let fd: number;
  try { fd = openSync(path, 'r'); } catch { return []; }
  try {
    const next = readU64(fd, COUNTER);
    const out: Holder[] = [];
    for (let t = readU64(fd, HEAD); t < next && out.length < NSLOTS; t++) {
      if (!sys.rangeConflict(fd, QUEUE + t, 1)) continue;
      const s = readSlot(fd, t);
      if (s) out.push(s);
    }
    return out;
  } finally { closeSync(fd); }
}

