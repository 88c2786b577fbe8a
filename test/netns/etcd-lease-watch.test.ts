import test from 'ava';
import { startEtcd, type EtcdServer } from '../../conformance/etcd.js';
import { EtcdKV, type WatchEvent } from '../../lib/store/etcd.js';

// The etcd client's lease and watch calls (what tetherd uses) against a real etcd.
let etcd: EtcdServer;
test.before(async () => { etcd = await startEtcd({ unix: true }); });
test.after.always(async () => { await etcd?.stop(); });

const kv = (p: string) => new EtcdKV({ endpoints: [etcd.endpoint], prefix: `/lw${process.pid}/${p}/`, timeoutMs: 4000 });
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

test.serial('lease: grant, put with the lease, keepalive, revoke deletes the key; keepalive of a revoked lease answers 0', async (t) => {
  const s = kv('lease');
  const id = await s.leaseGrant(30);
  t.regex(id, /^\d+$/);
  t.true(await s.txn({ if: [{ key: 'a', version: 0 }], put: [{ key: 'a', value: 'x' }] }, { lease: id }));
  const listed = await s.rangeWithRevision('');
  t.is(listed.entries.get('a')!.lease, id, 'the key is attached to the lease');
  t.true(listed.revision >= listed.entries.get('a')!.version);
  const ttl = await s.leaseKeepAlive(id);
  t.true(ttl > 0 && ttl <= 30, `ttl ${ttl}`);
  await s.leaseRevoke(id);
  t.is(await s.get('a'), undefined, 'revoking deleted the key');
  t.is(await s.leaseKeepAlive(id), 0);
  await t.notThrowsAsync(s.leaseRevoke(id), 'revoking twice is fine');
});

test.serial('watch: puts and deletes under the prefix from a revision on; a compacted start revision is reported so the caller re-lists', async (t) => {
  const s = kv('watch');
  const start = (await s.rangeWithRevision('')).revision;
  const seen: WatchEvent[] = [];
  let lastRev = 0;
  const w = s.watch('k/', start + 1, { events: (evs, rev) => { seen.push(...evs); lastRev = rev; }, compacted: () => t.fail('not compacted'), broken: (e) => t.fail(e.message) });
  try {
    await sleep(200);
    await s.txn({ if: [], put: [{ key: 'k/1', value: 'one' }] });
    await s.txn({ if: [], put: [{ key: 'other', value: 'ignored' }] });
    await s.txn({ if: [], del: ['k/1'] });
    for (let i = 0; i < 100 && seen.length < 2; i++) await sleep(20);
  } finally { w.close(); }
  t.deepEqual(seen.map((e) => [e.type, e.key, e.value]), [['put', 'k/1', 'one'], ['delete', 'k/1', '']]);
  t.true(lastRev > start);
  // Compact past the revision a late watcher would resume from.
  const now = (await s.rangeWithRevision('')).revision;
  const r = await fetchCompact(now);
  t.true(r);
  const compacted = await new Promise<number>((resolve, reject) => {
    const late = s.watch('k/', start + 1, { events: () => {}, compacted: (rev) => { late.close(); resolve(rev); }, broken: (e) => reject(e) });
    setTimeout(() => { late.close(); reject(new Error('no compaction reported within 5 s')); }, 5000);
  });
  t.is(compacted, now);
});

/** Compaction is an admin call tetherd never makes: through the same client transport, as a raw request. */
async function fetchCompact(revision: number): Promise<boolean> {
  const { post } = await import('../../lib/sys/http.js');
  const socketPath = etcd.endpoint.slice('unix://'.length);
  const r = await post({ url: 'http://localhost/v3/kv/compaction', socketPath, body: JSON.stringify({ revision: String(revision), physical: true }), headers: { 'content-type': 'application/json' }, timeoutMs: 4000 });
  return r.status === 200;
}
