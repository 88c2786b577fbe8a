import test from 'ava';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DeferredKV } from '../../lib/store/deferred.js';
import { FileKV } from '../../lib/store/file.js';
import { openStore } from '../../ipam/store.js';
import { parseIpamConfig } from '../../ipam/config.js';

test('DeferredKV builds its store at the first operation, once, and passes every operation through', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'tether-deferred-'));
  let built = 0;
  try {
    const kv = new DeferredKV('somewhere', async () => { built++; return new FileKV(dir); });
    t.is(kv.where, 'somewhere');
    t.is(built, 0, 'nothing is built before it is used');
    t.true(await kv.txn({ if: [{ key: 'a/b', version: 0 }], put: [{ key: 'a/b', value: 'x' }] }));
    t.false(await kv.txn({ if: [{ key: 'a/b', version: 0 }], put: [{ key: 'a/b', value: 'y' }] }), 'conditions hold through it');
    t.is((await kv.get('a/b'))?.value, 'x');
    t.deepEqual([...(await kv.range('a/')).keys()], ['a/b']);
    kv.close();
    t.is(built, 1);
  } finally { rmSync(dir, { recursive: true, force: true }); }
});

test('DeferredKV: closed unused it builds nothing; a failure to build is the first operation\'s error', async (t) => {
  let built = 0;
  new DeferredKV('x', async () => { built++; return new FileKV('/nonexistent'); }).close();
  t.is(built, 0);
  const broken = new DeferredKV('y', async () => { throw new Error('cannot read the CA file'); });
  await t.throwsAsync(broken.get('k'), { message: 'cannot read the CA file' });
  t.notThrows(() => broken.close());
});

test('openStore: a network on etcd gets a store named by its endpoints, loaded only when used', (t) => {
  const cfg = parseIpamConfig({ cniVersion: '1.0.0', name: 'n', type: 'tether-bridge', ipam: { type: 'tether-ipam', ranges: [[{ subnet: '10.9.0.0/24' }]], etcd: { endpoints: ['http://127.0.0.1:1', 'http://127.0.0.1:2'] } } });
  const kv = openStore(cfg);
  t.true(kv instanceof DeferredKV);
  t.is(kv.where, 'http://127.0.0.1:1,http://127.0.0.1:2');
  kv.close();
});
