import test from 'ava';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { EtcdKV } from '../../lib/store/etcd.js';
import { FileKV } from '../../lib/store/file.js';
import { StoreUnavailableError, type KV } from '../../lib/store/kv.js';
import { Allocator } from '../../ipam/allocator.js';
import { parseIpamConfig } from '../../ipam/config.js';
import { formatIP } from '../../lib/ip/addr.js';
import { startEtcd, type EtcdServer } from '../../conformance/etcd.js';
import { paced } from '../helpers/pace.js';

// The same contract for both stores: what the allocator relies on must mean the same on each.
let etcd: EtcdServer;
let etcdUnix: EtcdServer;
test.before(async () => { [etcd, etcdUnix] = await Promise.all([startEtcd(), startEtcd({ unix: true })]); });
test.after.always(async () => { await Promise.all([etcd?.stop(), etcdUnix?.stop()]); });

let n = 0;
const stores: [string, () => KV][] = [
  ['file', () => new FileKV(join(mkdtempSync(join(tmpdir(), 'tether-kvc-')), 'net'))],
  ['etcd', () => new EtcdKV({ endpoints: [etcd.endpoint], prefix: `/t${process.pid}-${++n}/` })],
  ['etcd over a Unix socket', () => new EtcdKV({ endpoints: [etcdUnix.endpoint], prefix: `/u${process.pid}-${++n}/` })],
];

for (const [name, make] of stores) {
  test(`${name}: conditional transactions, versions, prefix ranges`, async (t) => {
    const kv = make();
    t.true(await kv.txn({ if: [{ key: 'a', version: 0 }], put: [{ key: 'a', value: '1' }] }));
    const a = (await kv.get('a'))!;
    t.is(a.value, '1');
    t.true(a.version > 0);
    t.false(await kv.txn({ if: [{ key: 'a', version: 0 }], put: [{ key: 'a', value: 'x' }] }));
    t.false(await kv.txn({ if: [{ key: 'a', version: a.version + 1000 }], put: [{ key: 'a', value: 'x' }] }));
    t.true(await kv.txn({ if: [{ key: 'a', version: a.version }, { key: 'b/1', version: 0 }], put: [{ key: 'a', value: '2' }, { key: 'b/1', value: 'one' }, { key: 'b/2', value: 'two' }, { key: 'c', value: 'c' }] }));
    t.is((await kv.get('a'))!.value, '2');
    t.deepEqual([...(await kv.range('b/')).entries()].map(([k, e]) => [k, e.value]), [['b/1', 'one'], ['b/2', 'two']]);
    t.is((await kv.range('')).size, 4);
    t.true(await kv.txn({ if: [], del: ['b/1'] }));
    t.deepEqual([...(await kv.range('b/')).keys()], ['b/2']);
    t.is(await kv.get('b/1'), undefined);
    t.false(await kv.txn({ if: [{ key: 'c', version: 0 }], del: ['c'] }), 'a failed condition writes nothing');
    t.is((await kv.get('c'))!.value, 'c');
  });

  test(`${name}: 4 nodes allocating concurrently never share an address, and each uses its own blocks`, async (t) => {
    const kv = make();
    const cfg = (node: string) => parseIpamConfig({ cniVersion: '1.1.0', name: 'shared', type: 'x', ipam: { type: 'tether-ipam', dataDir: '/unused', ranges: [[{ subnet: '10.40.0.0/22' }]], nodeName: node } });
    const nodes = ['n1', 'n2', 'n3', 'n4'].map((nm) => ({ nm, alloc: new Allocator(kv, cfg(nm)) }));
    const got = await Promise.all(Array.from({ length: 80 }, (_, i) => nodes[i % 4].alloc.allocate({ containerID: `c${i}`, ifname: 'eth0' })));
    const ips = got.map((g) => formatIP(g.ips[0].ip));
    t.is(new Set(ips).size, 80, 'no duplicates');
    const list = await nodes[0].alloc.list();
    t.is(list.length, 80);
    for (const a of list) t.is(a.node, nodes[Number(a.containerID.slice(1)) % 4].nm, `${a.ip} (${a.containerID}) sits in its own node's block`);
    await Promise.all(got.map((_, i) => nodes[i % 4].alloc.release({ containerID: `c${i}`, ifname: 'eth0' })));
    t.is((await nodes[0].alloc.list()).length, 0);
  });
}

// Serial: the bound is checked against a wall clock, so it must not compete with the heavy tests of this file.
test.serial('etcd unreachable: a clear StoreUnavailableError naming the endpoints, within the time budget', async (t) => {
  const kv = new EtcdKV({ endpoints: ['http://127.0.0.1:9', 'http://127.0.0.1:11'], prefix: '/x/', timeoutMs: 1500 });
  const started = Date.now();
  const e = await t.throwsAsync(kv.get('a'), { instanceOf: StoreUnavailableError });
  t.regex(e!.message, /etcd unreachable for 1500 ms at http:\/\/127\.0\.0\.1:9,http:\/\/127\.0\.0\.1:11/);
  t.true(Date.now() - started < 1500 + paced(1000), `gave up after ${Date.now() - started} ms with a 1500 ms budget`);
});

test.serial('etcd fail-over: a dead first endpoint is skipped', async (t) => {
  const kv = new EtcdKV({ endpoints: ['http://127.0.0.1:9', etcd.endpoint], prefix: `/fo${process.pid}/`, timeoutMs: 10_000 });
  t.true(await kv.txn({ if: [], put: [{ key: 'k', value: 'v' }] }));
  t.is((await kv.get('k'))!.value, 'v');
});

test('tether-bridge with tether-ipam on etcd passes the conformance cases', async (t) => {
  const { parseNetworkList } = await import('../../lib/libcni/conf.js');
  const { runConformance } = await import('../../conformance/harness.js');
  const { fileURLToPath } = await import('node:url');
  const dist = fileURLToPath(new URL('../../../dist/bin/', import.meta.url));
  const list = parseNetworkList(Buffer.from(JSON.stringify({
    cniVersion: '1.1.0', name: 'etcd-net',
    plugins: [{ type: 'tether-bridge', bridge: 'tebr0', isDefaultGateway: true,
      // over the Unix socket: the plugins run in the harness's own host namespace, whose loopback is not ours
      ipam: { type: 'tether-ipam', ranges: [[{ subnet: '10.41.0.0/24' }]], etcd: { endpoints: [etcdUnix.endpoint], prefix: `/conf${process.pid}` } } }],
  })));
  const report = await runConformance({ list, path: [dist], skipDataplane: false });
  t.deepEqual(report.cases.filter((c) => c.status === 'fail').map((c) => `${c.id}: ${c.message}`), []);
  t.is(report.cases.find((c) => c.id === 'concurrent-adds')?.status, 'pass');
  t.is(report.cases.find((c) => c.id === 'del-leaves-nothing')?.status, 'pass');
  t.deepEqual(report.leftovers, []);
});

test.serial('etcd down: ADD fails with code 11 naming the endpoints, within 5 s, leaving nothing; STATUS answers 50', async (t) => {
  const { parseNetworkList } = await import('../../lib/libcni/conf.js');
  const { Lab } = await import('../../conformance/lab.js');
  const { snapshot, diffSnapshots } = await import('../../conformance/kernel.js');
  const { PluginFailure } = await import('../../lib/libcni/runtime.js');
  const { fileURLToPath } = await import('node:url');
  const dist = fileURLToPath(new URL('../../../dist/bin/', import.meta.url));
  const list = parseNetworkList(Buffer.from(JSON.stringify({
    cniVersion: '1.1.0', name: 'etcd-down',
    plugins: [{ type: 'tether-bridge', bridge: 'tedbr0', ipam: { type: 'tether-ipam', ranges: [[{ subnet: '10.42.0.0/24' }]], etcd: { endpoints: ['http://127.0.0.1:9', 'http://127.0.0.1:11'] } } }],
  })));
  const lab = new Lab(list, [dist]);
  try {
    const before = snapshot(lab.host);
    const c = lab.newContainer();
    const started = Date.now();
    const e = await t.throwsAsync(lab.attach(c), { instanceOf: PluginFailure });
    t.true(Date.now() - started < paced(5000), `took ${Date.now() - started} ms`);
    t.is(e!.code, 11);
    t.regex(e!.message, /etcd unreachable .*http:\/\/127\.0\.0\.1:9,http:\/\/127\.0\.0\.1:11/);
    t.deepEqual(diffSnapshots(before, snapshot(lab.host)), [], 'no bridge, no veth: IPAM runs first');
    const s = await t.throwsAsync(lab.runtime.status(list), { instanceOf: PluginFailure });
    t.is(s!.code, 50);
    await t.throwsAsync(lab.detach(c), { instanceOf: PluginFailure, message: /etcd unreachable/ }, 'DEL reports the store error so the runtime retries');
  } finally { lab.close(); }
});
