import { closeSync, mkdirSync, openSync } from 'node:fs';
import { dirname } from 'node:path';
import { sys } from '../sys/index.js';
import { LOCK_EX, LOCK_NB, LOCK_UN } from '../sys/types.js';
import { StoreUnavailableError } from './kv.js';

const queues = new Map<string, Promise<unknown>>();

/**
 * Runs fn holding an exclusive flock(2) on path: one holder per node at a time, across processes; a
 * kernel lock, so a holder killed -9 releases it. Callers in this same process queue on a promise
 * chain first, so they never wait on each other's flock (which would stall the one holding it), and
 * the wait polls asynchronously instead of blocking the event loop.
 */
export async function withFileLock<T>(path: string, fn: () => Promise<T>, timeoutMs = 10_000): Promise<T> {
  const prev = queues.get(path) ?? Promise.resolve();
  let done!: () => void;
  const mine = new Promise<void>((r) => { done = r; });
  const tail = prev.then(() => mine);
  queues.set(path, tail);
  await prev;
  let fd: number | undefined;
  try {
    try {
      mkdirSync(dirname(path), { recursive: true, mode: 0o700 });
      fd = openSync(path, 'a', 0o600);
    } catch (e) {
      throw new StoreUnavailableError(`cannot open lock ${path}: ${(e as Error).message}`);
    }
    const deadline = Date.now() + timeoutMs;
    // Back off while waiting: with many waiters, tight polling would starve the holder of CPU.
    for (let wait = 1; !sys.flock(fd, LOCK_EX | LOCK_NB); wait = Math.min(wait * 2, 16)) {
      if (Date.now() > deadline) throw new StoreUnavailableError(`${path} has been locked for ${timeoutMs / 1000} s by another process`);
      await new Promise((r) => setTimeout(r, wait));
    }
    try { return await fn(); } finally { sys.flock(fd, LOCK_UN); }
  } finally {
    if (fd !== undefined) closeSync(fd);
    done();
    if (queues.get(path) === tail) queues.delete(path);
  }
}
