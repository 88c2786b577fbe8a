import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { withFileLock } from '../../lib/store/lock.js';

/**
 * Tests that start hundreds of processes at once take turns across ava's worker processes: two of them
 * together on a 2-core machine would measure each other, not tether. A kernel flock, so a worker that
 * dies releases it, and a worker waits as long as the one running keeps running.
 */
export function heavy<T>(fn: () => Promise<T>): Promise<T> {
  return withFileLock(join(tmpdir(), 'tether-heavy-tests.lock'), fn, { what: `heavy test in pid ${process.pid}` });
}
