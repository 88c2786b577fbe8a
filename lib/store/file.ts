import { closeSync, fsyncSync, mkdirSync, openSync, readFileSync, renameSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { sys } from '../sys/index.js';
import { LOCK_EX, LOCK_NB, LOCK_UN } from '../sys/types.js';
import { StoreUnavailableError, type Entry, type KV, type Txn } from './kv.js';

/** The document on disk: pretty-printed JSON, so a person can read (and in an emergency, fix) it. */
interface Doc {
  format: 'tether-kv/1';
  revision: number;
  keys: Record<string, Entry>;
}

const LOCK_WAIT_MS = 10_000;
const pause = new Int32Array(new SharedArrayBuffer(4));

/**
 * An embedded KV in one directory: `store.json` holds every key; `lock` is flock(2)ed around each
 * transaction, a kernel lock that dies with its holder (even on kill -9), never a stale lock file.
 * A write goes to a temporary file that is fsynced and renamed over the old one, so a crash leaves
 * either the old document or the new one. Reads take no lock: rename makes each version whole.
 */
export class FileKV implements KV {
  readonly where: string;
  private readonly file: string;
  private readonly lockFile: string;

  constructor(dir: string) {
    this.where = dir;
    this.file = join(dir, 'store.json');
    this.lockFile = join(dir, 'lock');
  }

  private load(): Doc {
    let text: string;
    try {
      text = readFileSync(this.file, 'utf8');
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      if (code === 'ENOENT') return { format: 'tether-kv/1', revision: 0, keys: {} };
      throw new StoreUnavailableError(`cannot read ${this.file}: ${(e as Error).message}`);
    }
    try {
      const doc = JSON.parse(text) as Doc;
      if (doc.format !== 'tether-kv/1' || typeof doc.keys !== 'object') throw new Error('not a tether store document');
      return doc;
    } catch (e) {
      throw new StoreUnavailableError(`${this.file} is corrupt (${(e as Error).message}); move it aside to start empty`);
    }
  }

  private save(doc: Doc): void {
    const tmp = `${this.file}.tmp-${process.pid}`;
    try {
      const fd = openSync(tmp, 'w', 0o600);
      try {
        writeSync(fd, `${JSON.stringify(doc, null, 1)}\n`);
        fsyncSync(fd);
      } finally { closeSync(fd); }
      // The data is on disk before the rename, so after any crash the name holds the old document or
      // the new one, never a torn one. (A machine crash may lose the rename itself; every container of
      // that node died with it, and GC reconciles.)
      renameSync(tmp, this.file);
    } catch (e) {
      throw new StoreUnavailableError(`cannot write ${this.file}: ${(e as Error).message}`);
    }
  }

  /** Runs fn holding the lock, all synchronously: no other writer can interleave, in or out of this process. */
  private locked<T>(fn: () => T): T {
    let fd: number;
    try {
      mkdirSync(this.where, { recursive: true, mode: 0o700 });
      fd = openSync(this.lockFile, 'a', 0o600);
    } catch (e) {
      throw new StoreUnavailableError(`cannot open ${this.lockFile}: ${(e as Error).message}`);
    }
    try {
      const deadline = Date.now() + LOCK_WAIT_MS;
      while (!sys.flock(fd, LOCK_EX | LOCK_NB)) {
        if (Date.now() > deadline) throw new StoreUnavailableError(`${this.lockFile} has been locked for ${LOCK_WAIT_MS / 1000} s by another process`);
        Atomics.wait(pause, 0, 0, 2);
      }
      try { return fn(); } finally { sys.flock(fd, LOCK_UN); }
    } finally { closeSync(fd); }
  }

  async get(key: string): Promise<Entry | undefined> {
    return this.load().keys[key];
  }

  async range(prefix: string): Promise<Map<string, Entry>> {
    const keys = this.load().keys;
    return new Map(Object.keys(keys).filter((k) => k.startsWith(prefix)).sort().map((k) => [k, keys[k]]));
  }

  async txn(t: Txn): Promise<boolean> {
    return this.locked(() => {
      const doc = this.load();
      for (const c of t.if) if ((doc.keys[c.key]?.version ?? 0) !== c.version) return false;
      if (!t.put?.length && !t.del?.length) return true;
      const revision = doc.revision + 1;
      for (const p of t.put ?? []) doc.keys[p.key] = { value: p.value, version: revision };
      for (const k of t.del ?? []) delete doc.keys[k];
      doc.revision = revision;
      this.save(doc);
      return true;
    });
  }

  close(): void { /* nothing held between calls */ }
}
