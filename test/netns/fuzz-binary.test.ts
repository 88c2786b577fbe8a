import test from 'ava';
import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { childProcess } from '../../lib/builtin.js';

// Hostile input through the shipped binary, as a runtime would deliver it: a reply that is a well-formed
// CNI error (or success) on stdout, exit status 1 on error, no stack trace, no hang, nothing created.
const dist = fileURLToPath(new URL('../../../dist/bin/', import.meta.url));
const dataDir = mkdtempSync(join(tmpdir(), 'tether-fuzzbin-'));
test.after.always(() => rmSync(dataDir, { recursive: true, force: true }));

function exec(plugin: string, stdin: string | Buffer, env: Record<string, string>) {
  return childProcess().spawnSync(join(dist, plugin), [], {
    input: stdin, encoding: 'utf8', timeout: 20_000, maxBuffer: 64 << 20,
    env: { PATH: '/usr/bin:/bin', ...env },
  });
}

function wellFormed(t: any, r: ReturnType<typeof exec>, what: string): any {
  // EPIPE: the plugin answered (an environment error) and exited before reading its stdin, as it may.
  if ((r.error as NodeJS.ErrnoException | undefined)?.code !== 'EPIPE') t.falsy(r.error, `${what}: ${r.error?.message}`);
  t.not(r.signal, 'SIGTERM', `${what}: hung until the timeout`);
  // DEL, CHECK, GC and STATUS print nothing when they succeed.
  if (r.status === 0 && r.stdout === '') return {};
  let out: any;
  try { out = JSON.parse(r.stdout); } catch { t.fail(`${what}: stdout is not JSON: ${r.stdout.slice(0, 200)}`); return undefined; }
  if (r.status !== 0) {
    t.is(r.status, 1, what);
    t.is(typeof out.code, 'number', `${what}: error code`);
    t.true(typeof out.msg === 'string' && out.msg.length > 0 && out.msg.length < 4096, `${what}: a readable message`);
  }
  t.notRegex(`${r.stdout}\n${r.stderr}`, /\n\s+at .+:\d+:\d+/, `${what}: no stack trace`);
  return out;
}

const conf = (extra: Record<string, unknown> = {}) => JSON.stringify({ cniVersion: '1.1.0', name: 'fzb', type: 'tether-bridge', bridge: 'fzb0', ipam: { type: 'tether-ipam', dataDir, ranges: [[{ subnet: '10.74.0.0/24' }]] }, ...extra });
const env = { CNI_COMMAND: 'ADD', CNI_CONTAINERID: 'fz1', CNI_NETNS: '/run/netns/tether-fuzz-none', CNI_IFNAME: 'eth0', CNI_PATH: dist };

test('a 10 MB config, 100,000-deep nesting, huge numbers and unicode: well-formed answers, quickly', (t) => {
  const big = conf({ filler: 'x'.repeat(10 * 1024 * 1024) });
  const r1 = exec('tether-bridge', big, env);
  t.is(wellFormed(t, r1, '10 MB').code, 4, 'the config is fine; the namespace is not: code 4 naming CNI_NETNS');
  const deep = `${'['.repeat(100_000)}${']'.repeat(100_000)}`;
  const r2 = exec('tether-bridge', conf({ deep: 'PLACEHOLDER' }).replace('"PLACEHOLDER"', deep), env);
  t.true([6, 4].includes(wellFormed(t, r2, 'deep nesting').code));
  const r3 = exec('tether-bridge', conf({ mtu: 1e308 }), env);
  t.is(wellFormed(t, r3, 'huge mtu').code, 7);
  // Unicode is a legal interface name for the kernel; its length counts in bytes (4 emoji = 16 bytes).
  t.is(wellFormed(t, exec('tether-bridge', conf({ bridge: 'b🙂r' }), env), 'unicode bridge').code, 4);
  const r4 = exec('tether-bridge', conf({ bridge: '🙂🙂🙂🙂' }), env);
  t.is(wellFormed(t, r4, 'a 16-byte unicode bridge').code, 7);
  t.regex(JSON.parse(r4.stdout).msg, /16 bytes/);
  const r5 = exec('tether-ipam', Buffer.from([0xff, 0xfe, 0x00, 0x7b]), env);
  t.is(wellFormed(t, r5, 'binary junk').code, 6);
});

test('300 hostile environments through the binary: well-formed, and nothing created anywhere', (t) => {
  let x = 0x1234567;
  const r = () => { x ^= x << 13; x >>>= 0; x ^= x >>> 17; x ^= x << 5; x >>>= 0; return x / 0x100000000; };
  const pick = <T>(xs: T[]) => xs[Math.floor(r() * xs.length)];
  const values = ['', '..', '../../etc', '/etc/passwd', 'a/b', 'x'.repeat(16), 'x'.repeat(300), '\x1b[31m', 'e\tth', 'ok', '/run/netns/../../proc/1/ns/net', '/proc/self/ns/net', 'IP=10.74.0.9;K', '=;;', 'K=V;IgnoreUnknown=true'];
  for (let i = 0; i < 300; i++) {
    const e: Record<string, string> = { ...env, CNI_COMMAND: pick(['ADD', 'DEL', 'CHECK', 'VERSION', 'GC', 'STATUS', 'del', 'X']) };
    for (const k of ['CNI_CONTAINERID', 'CNI_NETNS', 'CNI_IFNAME', 'CNI_ARGS', 'CNI_PATH']) {
      if (r() < 0.5) e[k] = pick(values);
      if (r() < 0.1) delete e[k];
    }
    // Never let a case reach a real namespace: every one must stop before touching the kernel.
    if (e.CNI_NETNS === '/proc/self/ns/net' || e.CNI_NETNS === '/run/netns/../../proc/1/ns/net') e.CNI_NETNS = '/run/netns/tether-fuzz-none';
    const out = exec(pick(['tether-bridge', 'tether-ipam']), conf(), e);
    wellFormed(t, out, `case ${i} ${JSON.stringify(e).slice(0, 200)}`);
  }
  // No case allocated: the store holds no handle (a DEL or GC may have created the empty store itself).
  const handles = (() => { try { return readdirSync(join(dataDir, 'fzb', 'keys', 'handle')); } catch { return []; } })();
  t.deepEqual(handles, [], 'no address was reserved by any case');
});
