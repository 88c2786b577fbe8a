import test from 'ava';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { lockQueue, withFileLock, withFileLockSync } from '../../lib/store/lock.js';
import { StoreUnavailableError } from '../../lib/store/kv.js';
import { waitFor } from '../helpers/wait.js';

const child = fileURLToPath(new URL('../helpers/lock-child.js', import.meta.url));
const lockPath = () => join(mkdtempSync(join(tmpdir(), 'tether-lock-')), 'a.lock');

interface Child { p: ChildProcess; lines: string[]; exited: Promise<number | null> }

function start(path: string, holdMs: number | string, name: string, mode = 'async', stuckMs?: number): Child {
  const p = spawn(process.execPath, [child, path, String(holdMs), name, mode, ...(stuckMs ? [String(stuckMs)] : [])], { stdio: ['ignore', 'pipe', 'inherit'] });
  const lines: string[] = [];
  let buf = '';
  p.stdout!.on('data', (b: Buffer) => {
    buf += b;
    for (let nl = buf.indexOf('\n'); nl >= 0; nl = buf.indexOf('\n')) { lines.push(buf.slice(0, nl)); buf = buf.slice(nl + 1); }
  });
  return { p, lines, exited: new Promise((r) => p.on('exit', (code) => r(code))) };
}

const queueLength = (path: string) => lockQueue(path).length;

test('waiters are served in arrival order, each once the one before is done', async (t) => {
  const path = lockPath();
  const order: string[] = [];
  const kids: Child[] = [];
  const go = `${path}.go`;
  for (let i = 0; i < 6; i++) {
    // c0 holds until everyone is queued; the others hold briefly, sync and async alternately.
    kids.push(start(path, i === 0 ? `until:${go}` : 50, `c${i}`, i % 2 ? 'sync' : 'async'));
    // The next arrives only once this one is in the queue: arrival order is then known.
    await waitFor(`c${i} queued`, () => queueLength(path) === i + 1, { ms: 60_000, every: 10 });
  }
  writeFileSync(go, '');
  const codes = await Promise.all(kids.map((k) => k.exited));
  t.deepEqual(codes, [0, 0, 0, 0, 0, 0]);
  // Every child's acquisition came after the previous child's release: read the order they printed.
  for (const k of kids) order.push(...k.lines.filter((l) => l.startsWith('acquired')));
  t.deepEqual(order, ['acquired c0', 'acquired c1', 'acquired c2', 'acquired c3', 'acquired c4', 'acquired c5']);
  t.is(queueLength(path), 0, 'nobody left in the queue');
});

test('a holder killed -9 hands the lock on: the next waiter gets it, no stale lock is left', async (t) => {
  const path = lockPath();
  const holder = start(path, 60_000, 'h');
  await waitFor('holder acquired', () => holder.lines.includes('acquired h'), { ms: 60_000, every: 10 });
  const waiter = start(path, 10, 'w');
  await waitFor('waiter queued', () => queueLength(path) === 2, { ms: 60_000, every: 10 });
  t.false(waiter.lines.includes('acquired w'), 'the waiter waits while the holder lives');
  holder.p.kill('SIGKILL');
  t.is(await waiter.exited, 0);
  t.true(waiter.lines.includes('acquired w'));
});

test('a live holder working longer than the stuck limit is waited for; a stopped one ends in an error naming it', async (t) => {
  const path = lockPath();
  // Alive and working for 3x the limit: its heartbeat is progress, so the waiter waits it out.
  const working = start(path, 3000, 'busy');
  await waitFor('busy acquired', () => working.lines.includes('acquired busy'), { ms: 60_000, every: 10 });
  const patient = start(path, 10, 'patient', 'async', 1000);
  t.is(await patient.exited, 0, patient.lines.join('\n'));
  t.is(await working.exited, 0);

  // Stopped: no heartbeat, no CPU time, the queue does not move.
  const stopped = start(path, 60_000, 'stopped');
  await waitFor('stopped acquired', () => stopped.lines.includes('acquired stopped'), { ms: 60_000, every: 10 });
  stopped.p.kill('SIGSTOP');
  try {
    const waiter = start(path, 10, 'w2', 'sync', 1000);
    t.is(await waiter.exited, 3);
    const err = waiter.lines.find((l) => l.startsWith('error')) ?? '';
    t.regex(err, new RegExp(`is stuck: pid ${stopped.p.pid} \\(child stopped\\), holding it for [0-9.]+ s, with no sign of progress for [0-9.]+ s`));
  } finally { stopped.p.kill('SIGKILL'); }
});

test('in one process: callers queue on each other, and a synchronous caller does not deadlock on an asynchronous holder', async (t) => {
  const path = lockPath();
  const seen: number[] = [];
  await Promise.all([0, 1, 2].map((i) => withFileLock(path, async () => { seen.push(i); await new Promise((r) => setTimeout(r, 20)); seen.push(i); })));
  t.deepEqual(seen, [0, 0, 1, 1, 2, 2]);
  await withFileLock(path, async () => {
    t.throws(() => withFileLockSync(path, () => 1), { instanceOf: StoreUnavailableError, message: /held by an asynchronous caller in this process/ });
  });
  t.is(withFileLockSync(path, () => 7), 7);
});

test('a waiter sleeps: waiting 1.5 s costs it next to no CPU', async (t) => {
  const path = lockPath();
  const holder = start(path, 1500, 'h');
  await waitFor('holder acquired', () => holder.lines.includes('acquired h'), { ms: 60_000, every: 10 });
  const before = process.cpuUsage();
  await withFileLock(path, async () => undefined);
  const used = process.cpuUsage(before);
  const ms = (used.user + used.system) / 1000;
  t.true(ms < 300, `the waiter used ${ms.toFixed(0)} ms of CPU in a 1.5 s wait`);
  t.is(await holder.exited, 0);
});
