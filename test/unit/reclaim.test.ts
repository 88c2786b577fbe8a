import test from 'ava';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Allocator } from '../../ipam/allocator.js';
import { parseIpamConfig } from '../../ipam/config.js';
import { createLogger } from '../../lib/log.js';
import { FileKV } from '../../lib/store/file.js';
import { nodeKey } from '../../tetherd/bgp-plan.js';
import { GONE, isReclaimer, MEMBERS, reclaimActions, Reclaimer } from '../../tetherd/reclaim.js';

const view = (o: { members: string[]; live: string[]; gone?: [string, number][]; now?: number; afterMs?: number }) => ({
  members: new Set(o.members), live: new Set(o.live),
  gone: new Map((o.gone ?? []).map(([n, since]) => [n, { since, version: 7 }])),
  now: o.now ?? 10_000, afterMs: o.afterMs ?? 5_000,
});

test('reclaimActions: a member with no live record is marked, retired once gone long enough; a node back, or not a member, is unmarked', (t) => {
  t.deepEqual(reclaimActions(view({ members: ['a', 'b'], live: ['a', 'b'] })), [], 'everyone is here');
  t.deepEqual(reclaimActions(view({ members: ['a', 'b'], live: ['a'] })), [{ kind: 'mark', node: 'b' }]);
  t.deepEqual(reclaimActions(view({ members: ['a', 'b'], live: ['a'], gone: [['b', 6_000]] })), [], 'gone 4 s of 5: not yet');
  t.deepEqual(reclaimActions(view({ members: ['a', 'b'], live: ['a'], gone: [['b', 5_000]] })), [{ kind: 'retire', node: 'b', goneSince: 5_000 }]);
  t.deepEqual(reclaimActions(view({ members: ['a', 'b'], live: ['a', 'b'], gone: [['b', 1]] })), [{ kind: 'unmark', node: 'b', version: 7 }], 'b came back');
  t.deepEqual(reclaimActions(view({ members: ['a'], live: ['a'], gone: [['x', 1]] })), [{ kind: 'unmark', node: 'x', version: 7 }], 'a marker for no member');
  t.deepEqual(reclaimActions(view({ members: ['a', 'c', 'b'], live: ['a'] })).map((x) => x.kind === 'mark' && x.node), ['b', 'c'], 'in name order');
});

test('isReclaimer: the live node whose name sorts first, and only it', (t) => {
  t.true(isReclaimer('n1', ['n2', 'n3']));
  t.false(isReclaimer('n2', ['n1', 'n3']));
  t.true(isReclaimer('solo', []));
});

function cluster() {
  const dir = mkdtempSync(join(tmpdir(), 'tether-reclaim-'));
  const registry = new FileKV(join(dir, 'registry'));
  const ipamKV = new FileKV(join(dir, 'ipam'));
  const alloc = (node: string) => new Allocator(ipamKV, parseIpamConfig({ cniVersion: '1.0.0', name: 'pods', type: 'x', ipam: { type: 'tether-ipam', dataDir: dir, nodeName: node, ranges: [[{ subnet: '10.44.0.0/24' }]] } }));
  const log = createLogger({ component: 'test', level: 'error' });
  // One fake wall clock for every node: the period passes when the test says so.
  const clock = { now: Date.parse('2026-12-01T00:00:00Z') };
  const reclaimer = (node: string, afterMs: number) => new Reclaimer(registry, ipamKV, node, afterMs, log, () => clock.now);
  const register = (node: string) => registry.txn({ if: [], put: [{ key: nodeKey(node), value: '{}' }] });
  const unregister = (node: string) => registry.txn({ if: [], del: [nodeKey(node)] });
  const pass = (ms: number) => { clock.now += ms; };
  return { registry, alloc, reclaimer, register, unregister, pass };
}

test('Reclaimer: a node gone longer than the period loses its addresses and blocks, and its membership; the reclaiming node keeps its own', async (t) => {
  const c = cluster();
  const [r1, r2] = [c.reclaimer('n1', 200), c.reclaimer('n2', 200)];
  await r1.join();
  await r2.join();
  await c.register('n1');
  await c.alloc('n1').allocate({ containerID: 'p1', ifname: 'eth0' });
  await c.alloc('n2').allocate({ containerID: 'p2', ifname: 'eth0' });
  t.deepEqual((await c.alloc('n1').blockInfo()).map((b) => b.node).sort(), ['n1', 'n2']);
  // n2 has no live record: n2 itself is no reclaimer (n1 sorts first), n1 marks it, then retires it.
  t.deepEqual(await r2.round(new Set(['n1', 'n2'])), [], 'only the first live node acts');
  t.deepEqual((await r1.round(new Set(['n1']))).map((a) => a.kind), ['mark']);
  t.truthy(await c.registry.get(`${GONE}n2`));
  c.pass(199);
  t.deepEqual(await r1.round(new Set(['n1'])), [], 'not yet');
  c.pass(1);
  t.deepEqual((await r1.round(new Set(['n1']))).map((a) => a.kind), ['retire']);
  t.deepEqual((await c.alloc('n1').blockInfo()).map((b) => b.node), ['n1'], 'n2\'s block is back in the pool');
  t.deepEqual(await c.alloc('n1').holds({ containerID: 'p2', ifname: 'eth0' }), []);
  t.is((await c.alloc('n1').holds({ containerID: 'p1', ifname: 'eth0' })).length, 1, 'n1\'s pod keeps its address');
  t.deepEqual([...(await c.registry.range(MEMBERS)).keys()], [`${MEMBERS}n1`]);
  t.is((await c.registry.range(GONE)).size, 0);
});

test('Reclaimer: a node back before the period ends keeps everything; one that returns just as it is reclaimed keeps its record', async (t) => {
  const c = cluster();
  const r1 = c.reclaimer('n1', 150);
  await r1.join();
  await c.reclaimer('n2', 150).join();
  await c.alloc('n2').allocate({ containerID: 'p2', ifname: 'eth0' });
  t.deepEqual((await r1.round(new Set(['n1']))).map((a) => a.kind), ['mark']);
  await c.register('n2');
  t.deepEqual((await r1.round(new Set(['n1', 'n2']))).map((a) => a.kind), ['unmark'], 'back: the marker goes');
  c.pass(200);
  t.deepEqual(await r1.round(new Set(['n1', 'n2'])), []);
  t.deepEqual((await c.alloc('n1').blockInfo()).map((b) => b.node), ['n2'], 'its block stays');
  // Gone again, long enough; but its record is back by the time the retire runs: nothing is taken.
  await c.unregister('n2');
  t.deepEqual((await r1.round(new Set(['n1']))).map((a) => a.kind), ['mark']);
  c.pass(200);
  await c.register('n2');
  t.deepEqual((await r1.round(new Set(['n1']))).map((a) => a.kind), ['retire'], 'the round still saw it gone');
  t.deepEqual((await c.alloc('n1').blockInfo()).map((b) => b.node), ['n2'], 'its record decided: nothing reclaimed');
  t.is((await c.alloc('n2').holds({ containerID: 'p2', ifname: 'eth0' })).length, 1);
});
