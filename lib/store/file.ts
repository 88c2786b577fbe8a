import {
  closeSync, existsSync, fsyncSync, mkdirSync, openSync, readdirSync, readFileSync, renameSync, rmdirSync, rmSync, statSync, unlinkSync, writeSync,
} from 'node:fs';
import { dirname, join } from 'node:path';
import { withFileLockSync } from './lock.js';
import { mark } from '../trace.js';
import { StoreUnavailableError, type Entry, type KV, type Txn } from './kv.js';

/** A write-ahead record: everything one transaction writes, with the revision it gets. */
interface Journal {
  format: 'tether-kv-journal/1';
  revision: number;
  put: { key: string; value: string }[];
  del: string[];
}


/** Key segments become path segments; anything that could climb out of the directory is escaped. */
function segment(s: string): string {
  if (s === '' || s === '.' || s === '..') return `%${Buffer.from(s).toString('hex')}.`;
  return s.replace(/[^A-Za-z0-9_.:=@+-]/g, (c) => `%${c.charCodeAt(0).toString(16).padStart(2, '0')}`);
}

function unsegment(s: string): string {
  if (s.endsWith('.') && s.startsWith('%') && !s.slice(1, -1).includes('%')) return Buffer.from(s.slice(1, -1), 'hex').toString();
  return s.replace(/%([0-9a-f]{2})/g, (_, h: string) => String.fromCharCode(parseInt(h, 16)));
}

/**
 * An embedded KV in one directory, one small JSON file per key under keys/ (readable by a person),
 * so a read or a write touches only the keys involved: the cost of an operation does not grow with
 * how much the store holds. A transaction takes a kernel flock(2) (released if its holder dies, even
 * by kill -9), checks its conditions, writes its whole effect to an fsynced journal, then applies it
 * file by file (temporary file + rename) and removes the journal. After a crash the journal is
 * replayed before anything else reads or writes, so every transaction is all or nothing.
 */
export class FileKV implements KV {
  readonly where: string;
  private readonly keysDir: string;
  private readonly lockFile: string;
  private readonly journalFile: string;
  private readonly revisionFile: string;
  private readonly tmpDir: string;
  private tmpCounter = 0;

  constructor(dir: string) {
    this.where = dir;
    this.keysDir = join(dir, 'keys');
    this.lockFile = join(dir, 'lock');
    this.journalFile = join(dir, 'journal');
    this.revisionFile = join(dir, 'revision');
    this.tmpDir = join(dir, 'tmp');
  }

  private path(key: string): string {
    return join(this.keysDir, ...key.split('/').map(segment));
  }

  private fail(what: string, e: unknown): never {
    throw new StoreUnavailableError(`${what}: ${(e as Error).message}`);
  }

  private readEntry(key: string): Entry | undefined {
    let text: string;
    try {
      text = readFileSync(this.path(key), 'utf8');
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      if (code === 'ENOENT' || code === 'ENOTDIR') return undefined;
      this.fail(`cannot read key ${key} in ${this.where}`, e);
    }
    try {
      const entry = JSON.parse(text) as Entry;
      if (typeof entry.value !== 'string' || typeof entry.version !== 'number') throw new Error('not a {value, version} record');
      return entry;
    } catch (e) {
      throw new StoreUnavailableError(`${this.path(key)} is corrupt (${(e as Error).message}); move it aside or restore it`);
    }
  }

  /**
   * Writes a file so that its name holds the old content or the new, never a torn one. The temporary
   * file lives in tmp/, written only under the lock, so whatever is there when the lock is taken was
   * left by a writer that died: one directory to sweep instead of the whole tree.
   */
  private writeFile(file: string, text: string, durable: boolean): void {
    const tmp = join(this.tmpDir, `${++this.tmpCounter}-${process.pid}`);
    let fd: number;
    try {
      fd = openSync(tmp, 'w', 0o600);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
      mkdirSync(this.tmpDir, { recursive: true, mode: 0o700 });
      fd = openSync(tmp, 'w', 0o600);
    }
    try {
      writeSync(fd, text);
      if (durable) fsyncSync(fd);
    } finally { closeSync(fd); }
    // Most writes replace a key in a directory that exists: create directories only when one is missing.
    try { renameSync(tmp, file); } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
      mkdirSync(dirname(file), { recursive: true, mode: 0o700 });
      renameSync(tmp, file);
    }
  }

  private revision(): number {
    try { return Number(readFileSync(this.revisionFile, 'utf8')) || 0; } catch { return 0; }
  }

  /** Applies a journal (again, if a crash interrupted it: every step is idempotent), then drops it. */
  private apply(j: Journal): void {
    for (const p of j.put) this.writeFile(this.path(p.key), `${JSON.stringify({ value: p.value, version: j.revision })}\n`, false);
    for (const k of j.del) {
      const file = this.path(k);
      try { unlinkSync(file); } catch (e) {
        if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
      }
      this.pruneEmptyParents(file);
    }
    this.writeFile(this.revisionFile, `${j.revision}\n`, false);
    unlinkSync(this.journalFile);
  }

  /**
   * A deleted key's directories go too once empty (handle/<container>/ would otherwise outlive every
   * container ever attached, and every listing of handle/ would read them).
   */
  private pruneEmptyParents(file: string): void {
    for (let dir = dirname(file); dir.startsWith(`${this.keysDir}/`); dir = dirname(dir)) {
      try { rmdirSync(dir); } catch { return; /* not empty (or already gone): its parents are not empty either */ }
    }
  }

  /** Temporary files of a writer killed mid-transaction (called under the lock, so none is in use). */
  private sweepTmp(): void {
    let names: string[];
    try { names = readdirSync(this.tmpDir); } catch { return; }
    for (const n of names) { try { unlinkSync(join(this.tmpDir, n)); } catch { /* gone already */ } }
  }

  private recover(): void {
    this.sweepTmp();
    let text: string;
    try { text = readFileSync(this.journalFile, 'utf8'); } catch { return; }
    let j: Journal;
    try {
      j = JSON.parse(text) as Journal;
      if (j.format !== 'tether-kv-journal/1') throw new Error('unknown format');
    } catch (e) {
      // The journal is renamed into place only once complete, so an unreadable one is damage, not a torn write.
      throw new StoreUnavailableError(`${this.journalFile} is unreadable (${(e as Error).message}); the store needs a person to look`);
    }
    this.apply(j);
  }

  /**
   * Runs fn holding the lock, all synchronously: no other writer can interleave, in or out of this
   * process. Waiters queue in arrival order and wait as long as the queue moves (lib/store/lock.ts);
   * flock as well keeps out writers of earlier tether versions, which locked with flock alone.
   */
  private locked<T>(fn: () => T): T {
    try {
      return withFileLockSync(this.lockFile, () => {
        this.recover();
        return fn();
      }, { flock: true, what: 'store transaction' });
    } catch (e) {
      if (e instanceof StoreUnavailableError) throw e;
      this.fail(`store ${this.where}`, e);
    }
  }

  /** Reads never wait for the lock, unless a transaction is half applied: then they finish it first. */
  private consistent(): void {
    if (existsSync(this.journalFile)) this.locked(() => undefined);
  }

  async get(key: string): Promise<Entry | undefined> {
    this.consistent();
    return this.readEntry(key);
  }

  async range(prefix: string): Promise<Map<string, Entry>> {
    this.consistent();
    // Walk only the directory the prefix names (prefixes end at a "/" or are empty).
    const base = prefix.slice(0, prefix.lastIndexOf('/') + 1);
    const out = new Map<string, Entry>();
    const walk = (dir: string, keyPrefix: string) => {
      let names: string[];
      try { names = readdirSync(dir); } catch (e) {
        const code = (e as NodeJS.ErrnoException).code;
        if (code === 'ENOENT' || code === 'ENOTDIR') return;
        this.fail(`cannot list ${dir}`, e);
      }
      for (const n of names.sort()) {
        if (n.includes('.tmp-')) continue;
        const full = join(dir, n);
        const key = `${keyPrefix}${unsegment(n)}`;
        if (statSync(full).isDirectory()) walk(full, `${key}/`);
        else if (key.startsWith(prefix)) {
          const e = this.readEntry(key);
          if (e) out.set(key, e);
        }
      }
    };
    walk(base ? join(this.keysDir, ...base.slice(0, -1).split('/').map(segment)) : this.keysDir, base);
    return new Map([...out].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));
  }

  async txn(t: Txn): Promise<boolean> {
    mark('store: read');
    return this.locked(() => {
      mark('store: locked');
      for (const c of t.if) if ((this.readEntry(c.key)?.version ?? 0) !== c.version) return false;
      if (!t.put?.length && !t.del?.length) return true;
      const j: Journal = { format: 'tether-kv-journal/1', revision: this.revision() + 1, put: t.put ?? [], del: t.del ?? [] };
      try {
        // The journal is the commit point: durable and complete before any key file changes.
        this.writeFile(this.journalFile, JSON.stringify(j), true);
        mark('store: journal');
        this.apply(j);
        mark('store: applied');
      } catch (e) {
        this.fail(`cannot write to ${this.where}`, e);
      }
      return true;
    });
  }

  close(): void { /* nothing held between calls */ }

  /** Removes the whole store (tests and `cnictl` clean-up only). */
  destroy(): void { rmSync(this.where, { recursive: true, force: true }); }
}
