import test from 'ava';
import { existsSync, mkdtempSync, readFileSync, readdirSync, statSync, writeFileSync, mkdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { FileKV } from '../../lib/store/file.js';
import { StoreUnavailableError } from '../../lib/store/kv.js';

const dir = () => join(mkdtempSync(join(tmpdir(), 'tether-kv-')), 'net');

test('transactions apply only when every condition holds; versions move on every write', async (t) => {
  const kv = new FileKV(dir());
  t.true(await kv.txn({ if: [{ key: 'a', version: 0 }], put: [{ key: 'a', value: '1' }] }));
  const a = (await kv.get('a'))!;
  t.is(a.value, '1');
  t.false(await kv.txn({ if: [{ key: 'a', version: 0 }], put: [{ key: 'a', value: '2' }] }), 'create-if-absent loses when present');
  t.false(await kv.txn({ if: [{ key: 'a', version: a.version + 1 }], put: [{ key: 'a', value: '2' }] }), 'stale version loses');
  t.true(await kv.txn({ if: [{ key: 'a', version: a.version }], put: [{ key: 'a', value: '2' }, { key: 'b/x', value: 'y' }] }));
  t.true((await kv.get('a'))!.version > a.version);
  t.deepEqual([...(await kv.range('b/')).keys()], ['b/x']);
  t.true(await kv.txn({ if: [], del: ['a'] }));
  t.is(await kv.get('a'), undefined);
  // a deleted and re-created key gets a new version, so an old read can never match it again (no ABA)
  t.true(await kv.txn({ if: [{ key: 'a', version: 0 }], put: [{ key: 'a', value: '3' }] }));
  t.not((await kv.get('a'))!.version, a.version);
});

test('one readable file per key, private to root; range walks only its prefix', async (t) => {
  const d = dir();
  const kv = new FileKV(d);
  await kv.txn({ if: [], put: [{ key: 'block/10.0.0.0-26', value: '{"node":"n1"}' }, { key: 'handle/c1/eth0', value: '{}' }, { key: 'handle/c2/eth0', value: '{}' }] });
  const rec = JSON.parse(readFileSync(join(d, 'keys', 'block', '10.0.0.0-26'), 'utf8'));
  t.deepEqual(rec, { value: '{"node":"n1"}', version: 1 });
  t.is(statSync(join(d, 'keys', 'block', '10.0.0.0-26')).mode & 0o777, 0o600);
  t.is(statSync(d).mode & 0o777, 0o700);
  t.deepEqual([...(await kv.range('handle/')).keys()], ['handle/c1/eth0', 'handle/c2/eth0']);
  t.deepEqual([...(await kv.range('block/')).keys()], ['block/10.0.0.0-26']);
  t.is((await kv.range('')).size, 3);
  t.false(existsSync(join(d, 'journal')), 'the journal is gone once applied');
});

test('keys cannot name a path outside the store', async (t) => {
  const d = dir();
  const kv = new FileKV(d);
  await kv.txn({ if: [], put: [{ key: 'handle/../../escape/x', value: '1' }, { key: 'handle/./y', value: '2' }, { key: 'handle/a b\u0000c/z', value: '3' }] });
  t.false(existsSync(join(d, '..', 'escape')));
  t.deepEqual([...(await kv.range('handle/')).keys()].sort(), ['handle/../../escape/x', 'handle/./y', 'handle/a b\u0000c/z'].sort());
  const walk = (p: string): string[] => readdirSync(p).flatMap((n) => (statSync(join(p, n)).isDirectory() ? walk(join(p, n)) : [join(p, n)]));
  t.true(walk(join(d, 'keys')).every((f) => f.startsWith(join(d, 'keys'))));
});

test('a journal left by a crash is replayed before anything reads or writes', async (t) => {
  const d = dir();
  const kv = new FileKV(d);
  await kv.txn({ if: [], put: [{ key: 'a', value: 'old' }] });
  // what a process killed between commit (journal written) and apply leaves behind
  writeFileSync(join(d, 'journal'), JSON.stringify({ format: 'tether-kv-journal/1', revision: 7, put: [{ key: 'a', value: 'new' }, { key: 'b', value: 'made' }], del: [] }));
  t.is((await kv.get('a'))!.value, 'new');
  t.is((await kv.get('b'))!.version, 7);
  t.false(existsSync(join(d, 'journal')));
  t.true(await kv.txn({ if: [{ key: 'b', version: 7 }], put: [{ key: 'b', value: 'next' }] }));
  t.is((await kv.get('b'))!.version, 8, 'revisions continue after the replayed one');
});

test('corrupt records and journals are clear StoreUnavailableErrors, never a silent reset', async (t) => {
  const d = dir();
  const kv = new FileKV(d);
  await kv.txn({ if: [], put: [{ key: 'a', value: '1' }] });
  writeFileSync(join(d, 'keys', 'a'), '{"value": ');
  const e = await t.throwsAsync(kv.get('a'), { instanceOf: StoreUnavailableError });
  t.regex(e!.message, /keys\/a is corrupt/);
  writeFileSync(join(d, 'journal'), 'garbage');
  await t.throwsAsync(kv.txn({ if: [], put: [{ key: 'b', value: '1' }] }), { instanceOf: StoreUnavailableError, message: /journal is unreadable/ });
});

test('an unusable directory is StoreUnavailableError naming the path', async (t) => {
  const parent = mkdtempSync(join(tmpdir(), 'tether-kv-ro-'));
  writeFileSync(join(parent, 'blocker'), 'x');
  const kv = new FileKV(join(parent, 'blocker', 'net'));
  const e = await t.throwsAsync(kv.txn({ if: [], put: [{ key: 'a', value: '1' }] }), { instanceOf: StoreUnavailableError });
  t.regex(e!.message, /blocker/);
  mkdirSync(join(parent, 'ok'));
});

test('a deleted key takes its emptied directories with it; a killed writer\'s temporary files are swept by the next transaction', async (t) => {
  const d = dir();
  const kv = new FileKV(d);
  await kv.txn({ if: [], put: [{ key: 'handle/c1/eth0', value: '{}' }, { key: 'handle/c1/eth1', value: '{}' }, { key: 'handle/c2/eth0', value: '{}' }] });
  await kv.txn({ if: [], del: ['handle/c1/eth0'] });
  t.deepEqual(readdirSync(join(d, 'keys', 'handle')).sort(), ['c1', 'c2'], 'c1 still holds eth1');
  await kv.txn({ if: [], del: ['handle/c1/eth1', 'handle/c2/eth0'] });
  t.deepEqual(readdirSync(join(d, 'keys')), [], 'handle/ and its container directories are gone with their last keys');
  // what a writer killed between writing a temporary file and renaming it leaves behind
  writeFileSync(join(d, 'tmp', '7-99999'), 'half');
  await kv.txn({ if: [], put: [{ key: 'a', value: '1' }] });
  t.deepEqual(readdirSync(join(d, 'tmp')), [], 'swept under the lock');
  t.is((await kv.get('a'))!.value, '1');
});
