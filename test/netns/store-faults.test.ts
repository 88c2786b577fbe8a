import test, { type ExecutionContext } from 'ava';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { childProcess } from '../../lib/builtin.js';
import { Allocator } from '../../ipam/allocator.js';
import { parseIpamConfig } from '../../ipam/config.js';
import { openStore } from '../../ipam/store.js';
import type { NetConf } from '../../lib/cni/types.js';

// The embedded store under faults a node really has: its directory turned read-only, its disk full, a
// file in it damaged. Each ADD/DEL is the real tether-ipam binary, exec'd as a runtime delegates. Every
// fault must give a well-formed CNI error that names the place (code 11: the runtime retries), crash
// nothing, and once the fault is fixed everything works again with nothing lost or held twice.
const bin = fileURLToPath(new URL('../../../dist/bin/tether-ipam', import.meta.url));

interface Outcome { status: number | null; json: any; stderr: string }

function ipam(command: string, dataDir: string, containerID: string): Outcome {
  const conf = { cniVersion: '1.1.0', name: 'faults', type: 'tether-ipam', ipam: { type: 'tether-ipam', dataDir, ranges: [[{ subnet: '10.72.0.0/24' }]] } };
  const r = childProcess().spawnSync(bin, [], {
    input: JSON.stringify(conf), encoding: 'utf8', timeout: 30_000,
    env: { PATH: '/usr/bin:/bin', CNI_COMMAND: command, CNI_CONTAINERID: containerID, CNI_NETNS: `/run/netns/fake-${containerID}`, CNI_NETNS_OVERRIDE: '1', CNI_IFNAME: 'eth0', CNI_PATH: '/nonexistent', TETHER_NODENAME: 'n1' },
  });
  let json: any;
  try { json = r.stdout ? JSON.parse(r.stdout) : undefined; } catch { json = { unparsable: r.stdout }; }
  return { status: r.status, json, stderr: r.stderr };
}

/** A small tmpfs of its own, so "read-only" and "full" are real and touch nothing else. */
async function withTmpfs(sizeKiB: number, fn: (dir: string) => void | Promise<void>): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'tether-faults-'));
  const mount = (...args: string[]) => {
    const r = childProcess().spawnSync('/usr/bin/mount', args, { encoding: 'utf8' });
    if (r.status !== 0) throw new Error(`mount ${args.join(' ')}: ${r.stderr}`);
  };
  mount('-t', 'tmpfs', '-o', `size=${sizeKiB}k,mode=0700`, 'tether-faults', dir);
  try { await fn(dir); } finally {
    childProcess().spawnSync('/usr/bin/umount', [dir]);
    rmSync(dir, { recursive: true, force: true });
  }
}

const remount = (dir: string, mode: 'ro' | 'rw') => {
  const r = childProcess().spawnSync('/usr/bin/mount', ['-o', `remount,${mode}`, dir], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`remount ${mode}: ${r.stderr}`);
};

/** The addresses the store holds, read as cnictl reads them. */
async function held(dataDir: string): Promise<string[]> {
  const cfg = parseIpamConfig({ cniVersion: '1.1.0', name: 'faults', type: 'tether-ipam', ipam: { type: 'tether-ipam', dataDir, ranges: [[{ subnet: '10.72.0.0/24' }]] } } as NetConf);
  const kv = openStore(cfg);
  try { return (await new Allocator(kv, cfg).list()).map((a) => a.ip).sort(); } finally { kv.close(); }
}

const ipsOf = (o: Outcome): string[] => (o.json?.ips ?? []).map((i: { address: string }) => i.address);

/**
 * The fault is fixed: an ADD for `second` works and gets another address than `first` (which the fault
 * did not lose), then both release and the pool is empty.
 */
async function worksAgain(t: ExecutionContext, dir: string, first: Outcome, firstID: string, second: string): Promise<void> {
  const again = ipam('ADD', dir, second);
  t.is(again.status, 0, JSON.stringify(again.json));
  t.notDeepEqual(ipsOf(again), ipsOf(first), `a new address: ${firstID}'s is still held`);
  t.is(ipam('DEL', dir, firstID).status, 0);
  t.is(ipam('DEL', dir, second).status, 0);
  t.deepEqual(await held(dir), [], 'everything released');
}

test.serial('read-only store: ADD and DEL fail with code 11 naming the store; once writable, DEL releases and ADD works', async (t) => {
  await withTmpfs(4096, async (dir) => {
    const first = ipam('ADD', dir, 'ro1');
    t.is(first.status, 0, JSON.stringify(first.json));
    remount(dir, 'ro');
    const add = ipam('ADD', dir, 'ro2');
    t.is(add.status, 1);
    t.is(add.json.code, 11, JSON.stringify(add.json));
    t.regex(`${add.json.msg} ${add.json.details}`, new RegExp(dir.replace(/[/.]/g, '\\$&')));
    t.regex(add.json.msg, /read-only file system|EROFS/i);
    const del = ipam('DEL', dir, 'ro1');
    t.is(del.status, 1, 'a DEL that cannot release must fail, so the runtime retries it');
    t.is(del.json.code, 11);
    remount(dir, 'rw');
    t.is(ipam('DEL', dir, 'ro1').status, 0, 'the retried DEL succeeds');
    const again = ipam('ADD', dir, 'ro2');
    t.is(again.status, 0, JSON.stringify(again.json));
    t.deepEqual(await held(dir), ipsOf(again).map((a) => a.split('/')[0]), 'the retried DEL released ro1; the ADD that failed left nothing');
  });
});

test.serial('disk full: ADD fails with code 11 saying so, nothing is half-written; with space again it works', async (t) => {
  await withTmpfs(256, async (dir) => {
    const first = ipam('ADD', dir, 'full1');
    t.is(first.status, 0, JSON.stringify(first.json));
    // Fill what is left of the filesystem.
    const filler = join(dir, 'filler');
    try { writeFileSync(filler, Buffer.alloc(1024 * 1024)); } catch (e) { t.is((e as NodeJS.ErrnoException).code, 'ENOSPC'); }
    const add = ipam('ADD', dir, 'full2');
    t.is(add.status, 1);
    t.is(add.json.code, 11, JSON.stringify(add.json));
    t.regex(add.json.msg, /no space left|ENOSPC/i);
    rmSync(filler);
    await worksAgain(t, dir, first, 'full1', 'full2');
    const store = join(dir, 'faults');
    t.deepEqual(readdirSync(join(store, 'tmp')), [], 'no temporary file left by the failed write');
  });
});

test.serial('a damaged block file: code 11 naming the file, never a silent reset of the pool; restored, it works', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'tether-faults-'));
  try {
    const first = ipam('ADD', dir, 'bad1');
    t.is(first.status, 0, JSON.stringify(first.json));
    const blocks = join(dir, 'faults', 'keys', 'block');
    const file = join(blocks, readdirSync(blocks)[0]);
    const good = readFileSync(file);
    writeFileSync(file, '{"value": "{\\"cidr\\":');
    for (const command of ['ADD', 'DEL']) {
      const r = ipam(command, dir, command === 'ADD' ? 'bad2' : 'bad1');
      t.is(r.status, 1, command);
      t.is(r.json.code, 11, `${command}: ${JSON.stringify(r.json)}`);
      t.true(`${r.json.msg}`.includes(file), `${command} names the damaged file: ${r.json.msg}`);
    }
    writeFileSync(file, good);
    await worksAgain(t, dir, first, 'bad1', 'bad2');
  } finally { rmSync(dir, { recursive: true, force: true }); }
});

test.serial('a store directory that is a file: a clear code 11, no crash', (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'tether-faults-'));
  try {
    mkdirSync(join(dir, 'x'));
    writeFileSync(join(dir, 'x', 'faults'), 'not a directory');
    const r = ipam('ADD', join(dir, 'x'), 'f1');
    t.is(r.status, 1);
    t.is(r.json.code, 11, JSON.stringify(r.json));
    t.regex(r.json.msg, /not a directory|ENOTDIR|EEXIST/i);
  } finally { rmSync(dir, { recursive: true, force: true }); }
});
