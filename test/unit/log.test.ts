import test from 'ava';
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, readdirSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { appendLine, createLogger } from '../../lib/log.js';
import { runPlugin, type PluginSpec } from '../../lib/cni/skel.js';
import { CniError } from '../../lib/cni/errors.js';
import type { NetConf } from '../../lib/cni/types.js';

const dir = () => mkdtempSync(join(tmpdir(), 'tether-log-'));
const lines = (file: string) => readFileSync(file, 'utf8').split('\n').filter(Boolean).map((l) => JSON.parse(l));

const spec = (fail?: Error): PluginSpec<NetConf> => ({
  name: 'log-plugin', about: '',
  add(ctx) { if (fail) throw fail; return { cniVersion: ctx.version, ips: [{ address: '10.0.0.2/24' }] }; },
  del() {}, check() {},
});
const env = { CNI_COMMAND: 'ADD', CNI_CONTAINERID: 'ctr-1', CNI_NETNS: '/proc/1/ns/net', CNI_IFNAME: 'eth0', CNI_PATH: '/x', CNI_NETNS_OVERRIDE: '1' };
async function run(conf: Record<string, unknown> | string, e: Record<string, string> = env, fail?: Error) {
  let out = '';
  const status = await runPlugin(spec(fail), { env: e, readStdin: () => Buffer.from(typeof conf === 'string' ? conf : JSON.stringify({ cniVersion: '1.0.0', name: 'net1', type: 'log-plugin', ...conf })), stdout: (s) => { out += s; } });
  return { status, out };
}

test('one structured line per operation: command, container, network, duration, result', async (t) => {
  const file = join(dir(), 'sub', 'tether.log');
  t.is((await run({ log: { file } })).status, 0);
  t.is((await run({ log: { file } }, { ...env, CNI_COMMAND: 'DEL' })).status, 0);
  const [add, del] = lines(file);
  t.like(add, { level: 'info', component: 'log-plugin', msg: 'operation', command: 'ADD', containerID: 'ctr-1', ifname: 'eth0', netns: '/proc/1/ns/net', network: 'net1', plugin: 'log-plugin', result: 'ok' });
  t.is(typeof add.duration_ms, 'number');
  t.true(add.duration_ms >= 0 && add.duration_ms < 10_000);
  t.false('error' in add);
  t.like(del, { command: 'DEL', result: 'ok' });
  t.regex(add.time, /^\d{4}-\d\d-\d\dT/);
  t.is(statSync(file).mode & 0o777, 0o600, 'the log may name containers: owner only');
});

test('a failed operation logs its error code and message', async (t) => {
  const file = join(dir(), 'tether.log');
  const r = await run({ log: { file } }, env, new CniError(11, 'no free address in range set 10.0.0.2-10.0.0.3', 'range 0'));
  t.is(r.status, 1);
  const [line] = lines(file);
  t.like(line, { level: 'error', command: 'ADD', result: 'error', network: 'net1', error: { code: 11, msg: 'no free address in range set 10.0.0.2-10.0.0.3', details: 'range 0' } });
});

test('a request that is not even JSON is logged to TETHER_LOG_FILE with its decoding error', async (t) => {
  const file = join(dir(), 'tether.log');
  t.is((await run('{"cniVersion":', { ...env, TETHER_LOG_FILE: file })).status, 1);
  const [line] = lines(file);
  t.like(line, { command: 'ADD', containerID: 'ctr-1', result: 'error', error: { code: 6 } });
  t.is(line.network, undefined);
});

test('level error keeps failures and drops successful operations', async (t) => {
  const file = join(dir(), 'tether.log');
  await run({ log: { file, level: 'error' } });
  t.false(existsSync(file));
  await run({ log: { file, level: 'error' } }, env, new CniError(7, 'bad'));
  t.is(lines(file).length, 1);
});

test('a malformed log section is a config error naming the field', async (t) => {
  for (const [log, field] of [[{ file: 'relative.log' }, 'log.file'], [{ level: 'loud' }, 'log.level'], [{ maxSizeMB: 0 }, 'log.maxSizeMB'], [{ maxFiles: 1.5 }, 'log.maxFiles'], ['x', 'log']] as const) {
    const r = await run({ log });
    t.is(r.status, 1);
    const e = JSON.parse(r.out);
    t.is(e.code, 7, JSON.stringify(log));
    t.is(e.details, field);
  }
});

test('DEL with a malformed log section still cleans up, logging to TETHER_LOG_FILE', async (t) => {
  const file = join(dir(), 'tether.log');
  const r = await run({ log: { maxFiles: 0 } }, { ...env, CNI_COMMAND: 'DEL', TETHER_LOG_FILE: file });
  t.is(r.status, 0, r.out);
  const [warn, op] = lines(file);
  t.like(warn, { level: 'warn' });
  t.regex(warn.msg, /ignoring the config's log section for DEL: .*log\.maxFiles/);
  t.like(op, { command: 'DEL', result: 'ok' });
});

test('secrets never reach the log, at any depth', (t) => {
  const file = join(dir(), 'tether.log');
  const log = createLogger({ component: 'c', file });
  log.info('etcd config', { etcd: { endpoints: ['https://198.18.0.1:2379'], username: 'tether', password: 'hunter2', nested: [{ token: 'abc123' }] } });
  const text = readFileSync(file, 'utf8');
  t.false(text.includes('hunter2'));
  t.false(text.includes('abc123'));
  t.is(lines(file)[0].etcd.username, 'tether');
  t.is(lines(file)[0].etcd.password, '[redacted]');
  log.error('etcd unreachable at http://root:s3cr3t@198.18.0.1:2379 and https://198.18.0.2:2379');
  t.is(lines(file)[1].msg, 'etcd unreachable at http://[redacted]@198.18.0.1:2379 and https://198.18.0.2:2379');
});

test('rotation by size keeps N files, newest first, and drops the oldest', (t) => {
  const d = dir();
  const file = join(d, 'tether.log');
  const line = (i: number) => `${JSON.stringify({ i, pad: 'y'.repeat(80) })}\n`;
  const rot = { maxBytes: 1000, keep: 2 };
  for (let i = 0; i < 100; i++) appendLine(file, line(i), rot);
  t.deepEqual(readdirSync(d).filter((f) => !f.endsWith('.lock')).sort(), ['tether.log', 'tether.log.1', 'tether.log.2']);
  for (const f of ['tether.log', 'tether.log.1', 'tether.log.2']) t.true(statSync(join(d, f)).size <= rot.maxBytes, f);
  const kept = [...lines(`${file}.2`), ...lines(`${file}.1`), ...lines(file)].map((l) => l.i);
  // The newest lines, in order, without a gap.
  t.is(kept[kept.length - 1], 99);
  t.deepEqual(kept, Array.from({ length: kept.length }, (_, k) => 100 - kept.length + k));
  t.true(kept.length >= 20);
});

test('several processes writing and rotating at once lose no line and tear none', async (t) => {
  const d = dir();
  const file = join(d, 'tether.log');
  const writer = fileURLToPath(new URL('../helpers/log-writer.js', import.meta.url));
  const [procs, n] = [4, 300];
  // Enough kept files that nothing is dropped: every line written must be found exactly once.
  await Promise.all(Array.from({ length: procs }, (_, id) => new Promise<void>((resolve, reject) => {
    const c = spawn(process.execPath, [writer, file, String(id), String(n), '4000', '200'], { stdio: 'inherit' });
    c.on('error', reject);
    c.on('exit', (code) => (code === 0 ? resolve() : reject(new Error(`writer ${id} exited ${code}`))));
  })));
  const files = readdirSync(d).filter((f) => f.startsWith('tether.log') && !f.endsWith('.lock'));
  t.true(files.length > 10, `rotated many times (${files.length} files)`);
  t.true(files.length < 200, 'never ran out of kept files');
  const seen = new Set<string>();
  for (const f of files) {
    for (const l of lines(join(d, f))) {
      const k = `${l.writer}/${l.i}`;
      t.false(seen.has(k), `${k} written once`);
      seen.add(k);
    }
    // A soft limit: writers that checked the size just before a rotation may each add one line (~75 bytes).
    t.true(statSync(join(d, f)).size <= 4000 + procs * 100, `${f} stayed near its size limit`);
  }
  t.is(seen.size, procs * n);
});
