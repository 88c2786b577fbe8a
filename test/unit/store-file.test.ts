import test from 'ava';
import { chmodSync, mkdtempSync, readFileSync, statSync, writeFileSync } from 'node:fs';
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
});

test('the document is readable by a person, private to root, written atomically', async (t) => {
  const d = dir();
  const kv = new FileKV(d);
  await kv.txn({ if: [], put: [{ key: 'ip/10.0.0.2', value: '{"containerID":"c1"}' }] });
  const text = readFileSync(join(d, 'store.json'), 'utf8');
  t.regex(text, /\n "keys": \{\n  "ip\/10\.0\.0\.2"/);
  t.is(statSync(join(d, 'store.json')).mode & 0o777, 0o600);
  t.is(statSync(d).mode & 0o777, 0o700);
});

test('a corrupt document is a clear StoreUnavailableError, not a crash or silent reset', async (t) => {
  const d = dir();
  const kv = new FileKV(d);
  await kv.txn({ if: [], put: [{ key: 'a', value: '1' }] });
  writeFileSync(join(d, 'store.json'), '{"format": "tether-kv/1", "keys": ');
  const e = await t.throwsAsync(kv.range(''), { instanceOf: StoreUnavailableError });
  t.regex(e!.message, /corrupt.*move it aside/);
  await t.throwsAsync(kv.txn({ if: [], put: [{ key: 'b', value: '1' }] }), { instanceOf: StoreUnavailableError });
});

test('an unwritable directory is StoreUnavailableError naming the path', async (t) => {
  const parent = mkdtempSync(join(tmpdir(), 'tether-kv-ro-'));
  chmodSync(parent, 0o500);
  // root ignores permission bits, so make the path impossible instead: a file where the directory should be
  writeFileSync(join(parent, 'blocker'), 'x');
  const kv = new FileKV(join(parent, 'blocker', 'net'));
  const e = await t.throwsAsync(kv.txn({ if: [], put: [{ key: 'a', value: '1' }] }), { instanceOf: StoreUnavailableError });
  t.regex(e!.message, /blocker/);
});
