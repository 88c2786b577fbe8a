import test from 'ava';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Allocator } from '../../ipam/allocator.js';
import { parseIpamConfig, setCapacity, type IpamConfig } from '../../ipam/config.js';
import { CniError } from '../../lib/cni/errors.js';
import { formatIP, parseIP } from '../../lib/ip/addr.js';
import { FileKV } from '../../lib/store/file.js';
import type { NetConf } from '../../lib/cni/types.js';

const conf = (ipam: Record<string, unknown>, extra: Record<string, unknown> = {}): NetConf => ({ cniVersion: '1.0.0', name: 'net1', type: 'x', ipam: { type: 'tether-ipam', ...ipam }, ...extra });

/** An allocator for one node of a network whose store lives in dataDir (several nodes share it). */
function nodeAllocator(dataDir: string, name: string, ipam: Record<string, unknown>): Allocator {
  const cfg = parseIpamConfig(conf({ dataDir, nodeName: name, ...ipam }));
  return new Allocator(new FileKV(join(cfg.dataDir, cfg.network)), cfg);
}

/** Nodes of one network sharing one store: node(name) is that node's allocator. */
function sharedStore(ipam: Record<string, unknown>) {
  const dataDir = mkdtempSync(join(tmpdir(), 'tether-ipam-'));
  return (name: string, extra: Record<string, unknown> = {}) => nodeAllocator(dataDir, name, { ...ipam, ...extra });
}

function setup(ipam: Record<string, unknown>) {
  const cfg = parseIpamConfig(conf({ dataDir: mkdtempSync(join(tmpdir(), 'tether-ipam-')), ...ipam }));
  const kv = new FileKV(join(cfg.dataDir, cfg.network));
  return { cfg, kv, alloc: new Allocator(kv, cfg) };
}

test('config: host-local defaults (start .1 skipping the gateway, end before broadcast)', (t) => {
  const c = parseIpamConfig(conf({ ranges: [[{ subnet: '10.1.0.0/24' }], [{ subnet: 'fd01::/120' }]] }));
  t.is(formatIP(c.ranges[0][0].gateway), '10.1.0.1');
  t.is(formatIP(c.ranges[0][0].start), '10.1.0.1');
  t.is(formatIP(c.ranges[0][0].end), '10.1.0.254');
  t.is(formatIP(c.ranges[1][0].end), 'fd01::ff', 'IPv6 has no broadcast');
  t.is(setCapacity(c.ranges[0]), 253n);
  t.is(c.dataDir, '/var/lib/cni/tether/ipam');
});

test('config: legacy top-level subnet and runtimeConfig.ipRanges come first', (t) => {
  const c = parseIpamConfig(conf({ subnet: '10.2.0.0/24', ranges: [[{ subnet: '10.3.0.0/24' }]] }, { runtimeConfig: { ipRanges: [[{ subnet: '10.4.0.0/24' }]] } }));
  t.deepEqual(c.ranges.map((s) => formatIP(s[0].subnet.ip)), ['10.4.0.0', '10.2.0.0', '10.3.0.0']);
});

test('config: every mistake is code 7 naming the field', (t) => {
  const bad: [Record<string, unknown>, RegExp][] = [
    [{}, /"ipam.ranges" is required/],
    [{ ranges: [[{ subnet: '10.0.0.1/24' }]] }, /ipam.ranges\[0\]\[0\].subnet" has host bits set; the network address is 10.0.0.0\/24/],
    [{ ranges: [[{ subnet: '10.0.0.0/31' }]] }, /too small/],
    [{ ranges: [[{ subnet: 'nope' }]] }, /ipam.ranges\[0\]\[0\].subnet/],
    [{ ranges: [[{ subnet: '10.0.0.0/24', rangeStart: '10.0.1.5' }]] }, /rangeStart" must be inside 10.0.0.0\/24/],
    [{ ranges: [[{ subnet: '10.0.0.0/24', rangeStart: '10.0.0.9', rangeEnd: '10.0.0.5' }]] }, /must not be after rangeEnd/],
    [{ ranges: [[{ subnet: '10.0.0.0/24' }, { subnet: 'fd00::/64' }]] }, /mixes IPv4 and IPv6/],
    [{ ranges: [[{ subnet: '10.0.0.0/16' }], [{ subnet: '10.0.5.0/24' }]] }, /overlaps range set 0/],
    [{ ranges: [[{ subnet: '10.0.0.0/24' }]], exclude: ['x'] }, /ipam.exclude\[0\]/],
    [{ ranges: [[{ subnet: '10.0.0.0/24' }]], dataDir: 'relative' }, /ipam.dataDir" must be an absolute path/],
    [{ ranges: [[{ subnet: '10.0.0.0/24' }]], routes: [{ dst: 'x' }] }, /ipam.routes\[0\].dst/],
  ];
  for (const [ipam, re] of bad) {
    const e = t.throws(() => parseIpamConfig(conf(ipam)), { instanceOf: CniError });
    t.is(e!.code, 7);
    t.regex(e!.message, re);
  }
});

test('allocation is round robin, skips the gateway and excluded addresses, one per range set', async (t) => {
  const { alloc } = setup({ ranges: [[{ subnet: '10.9.0.0/29' }], [{ subnet: 'fd09::/125' }]], exclude: ['10.9.0.3'] });
  const a = await alloc.allocate({ containerID: 'a', ifname: 'eth0' });
  t.deepEqual(a.ips.map((i) => formatIP(i.ip)), ['10.9.0.2', 'fd09::2']);
  const b = await alloc.allocate({ containerID: 'b', ifname: 'eth0' });
  t.deepEqual(b.ips.map((i) => formatIP(i.ip)), ['10.9.0.4', 'fd09::3'], '10.9.0.3 is excluded');
  await alloc.release({ containerID: 'a', ifname: 'eth0' });
  const c = await alloc.allocate({ containerID: 'c', ifname: 'eth0' });
  t.is(formatIP(c.ips[0].ip), '10.9.0.5', 'a released address is not reused at once');
});

test('ADD for a handle that already holds addresses returns them (no leak on retry)', async (t) => {
  const { alloc } = setup({ ranges: [[{ subnet: '10.8.0.0/24' }]] });
  const first = await alloc.allocate({ containerID: 'a', ifname: 'eth0' });
  const again = await alloc.allocate({ containerID: 'a', ifname: 'eth0' });
  t.false(first.existing);
  t.true(again.existing);
  t.deepEqual(again.ips.map((i) => formatIP(i.ip)), first.ips.map((i) => formatIP(i.ip)));
  t.is((await alloc.list()).length, 1);
  t.deepEqual(await alloc.release({ containerID: 'a', ifname: 'eth0' }), ['10.8.0.2']);
  t.deepEqual(await alloc.release({ containerID: 'a', ifname: 'eth0' }), [], 'releasing twice is fine');
  t.deepEqual(await alloc.release({ containerID: 'never', ifname: 'eth0' }), []);
});

test('exhaustion is a clear error naming the range and counting the use', async (t) => {
  const { alloc } = setup({ ranges: [[{ subnet: '10.7.0.0/24', rangeStart: '10.7.0.10', rangeEnd: '10.7.0.11' }]] });
  await alloc.allocate({ containerID: 'a', ifname: 'eth0' });
  await alloc.allocate({ containerID: 'b', ifname: 'eth0' });
  const e = await t.throwsAsync(alloc.allocate({ containerID: 'c', ifname: 'eth0' }), { instanceOf: CniError });
  t.is(e!.code, 11);
  t.regex(e!.message, /no free address in range set 10\.7\.0\.10-10\.7\.0\.11 of network "net1": 2 of 2 in use/);
});

test('requested addresses: honoured, refused when taken, outside every range, or the gateway', async (t) => {
  const { alloc } = setup({ ranges: [[{ subnet: '10.6.0.0/24' }]] });
  const a = await alloc.allocate({ containerID: 'a', ifname: 'eth0' }, [parseIP('10.6.0.77')!]);
  t.is(formatIP(a.ips[0].ip), '10.6.0.77');
  await t.throwsAsync(alloc.allocate({ containerID: 'b', ifname: 'eth0' }, [parseIP('10.6.0.77')!]), { message: /already held by a\/eth0/ });
  await t.throwsAsync(alloc.allocate({ containerID: 'b', ifname: 'eth0' }, [parseIP('10.5.0.1')!]), { message: /in no range/ });
  await t.throwsAsync(alloc.allocate({ containerID: 'b', ifname: 'eth0' }, [parseIP('10.6.0.1')!]), { message: /is the gateway/ });
});

test('GC releases every attachment not in the valid set', async (t) => {
  const { alloc } = setup({ ranges: [[{ subnet: '10.5.0.0/24' }]] });
  for (const id of ['a', 'b', 'c']) await alloc.allocate({ containerID: id, ifname: 'eth0' });
  const released = await alloc.gc({ valid: [{ containerID: 'b', ifname: 'eth0' }] });
  t.deepEqual(released.map((r) => r.containerID).sort(), ['a', 'c']);
  t.deepEqual((await alloc.list()).map((a) => a.containerID), ['b']);
});

test('concurrent allocations in one process never hand out an address twice', async (t) => {
  const { alloc } = setup({ ranges: [[{ subnet: '10.4.0.0/24' }]] });
  const got = await Promise.all(Array.from({ length: 40 }, (_, i) => alloc.allocate({ containerID: `c${i}`, ifname: 'eth0' })));
  const ips = got.map((g) => formatIP(g.ips[0].ip));
  t.is(new Set(ips).size, 40);
  t.is((await alloc.list()).length, 40);
});

test('blocks: a node claims a block and fills it before claiming the next', async (t) => {
  const { alloc } = setup({ ranges: [[{ subnet: '10.20.0.0/24' }]], blockSize: 28, nodeName: 'n1' });
  for (let i = 0; i < 15; i++) await alloc.allocate({ containerID: `c${i}`, ifname: 'eth0' });
  const blocks = await alloc.blockInfo();
  t.deepEqual(blocks.map((b) => [b.cidr, b.node, b.used]), [['10.20.0.0/28', 'n1', 14], ['10.20.0.16/28', 'n1', 1]],
    'the first /28 holds 14 (its .0 network address and the .1 gateway are not usable) before a second is claimed');
});

test('blocks: nodes get blocks of their own; with no free block left, a node borrows unless strictAffinity', async (t) => {
  const shared = sharedStore({ ranges: [[{ subnet: '10.21.0.0/27' }]], blockSize: 28 });
  const node = (name: string, strict = false) => shared(name, { strictAffinity: strict });
  const n1 = node('n1');
  const n2 = node('n2');
  const a = await n1.allocate({ containerID: 'a', ifname: 'eth0' });
  const b = await n2.allocate({ containerID: 'b', ifname: 'eth0' });
  t.is(formatIP(a.ips[0].ip), '10.21.0.2');
  t.is(formatIP(b.ips[0].ip), '10.21.0.16', 'n2 claims the second block');
  const info = await n1.blockInfo();
  t.deepEqual(info.map((x) => [x.cidr, x.node]), [['10.21.0.0/28', 'n1'], ['10.21.0.16/28', 'n2']]);
  // n2 fills its block, then borrows from n1's
  for (let i = 0; i < 15; i++) await n2.allocate({ containerID: `b${i}`, ifname: 'eth0' });
  const borrowed = (await n2.list()).filter((x) => x.containerID.startsWith('b') && x.node === 'n1');
  t.true(borrowed.length > 0, 'n2 borrowed from n1 once the pool had no free block');
  // strict: n3 with no block and no free block left gets a clear error instead of borrowing
  const n3 = node('n3', true);
  const e = await t.throwsAsync(n3.allocate({ containerID: 'z', ifname: 'eth0' }), { instanceOf: CniError });
  t.regex(e!.message, /strictAffinity/);
});

test('blocks: maxBlocksPerNode caps how many blocks one node claims', async (t) => {
  const { alloc } = setup({ ranges: [[{ subnet: '10.22.0.0/24' }]], blockSize: 29, nodeName: 'n1', maxBlocksPerNode: 1, strictAffinity: true });
  // the first /29 has six usable addresses: .2-.7 (.0 is below rangeStart, .1 is the gateway)
  for (let i = 0; i < 6; i++) await alloc.allocate({ containerID: `c${i}`, ifname: 'eth0' });
  const e = await t.throwsAsync(alloc.allocate({ containerID: 'c9', ifname: 'eth0' }), { instanceOf: CniError });
  t.regex(e!.message, /limit of 1 blocks/);
});

test('an ADD touches the handle and its block only: the store keys read do not grow with allocations held', async (t) => {
  const { alloc, kv } = setup({ ranges: [[{ subnet: '10.23.0.0/20' }]], nodeName: 'n1' });
  let ranged = 0;
  const origRange = kv.range.bind(kv);
  kv.range = async (prefix: string) => { const m = await origRange(prefix); ranged += m.size; return m; };
  for (let i = 0; i < 300; i++) await alloc.allocate({ containerID: `c${i}`, ifname: 'eth0' });
  ranged = 0;
  await alloc.allocate({ containerID: 'last', ifname: 'eth0' });
  t.true(ranged <= 6, `one ADD with 300 held read ${ranged} keys (the /26 blocks in use), not the 300 handles`);
  t.is((await alloc.list()).length, 301);
  t.deepEqual(await alloc.release({ containerID: 'c7', ifname: 'eth0' }), ['10.23.0.9']);
});

test('a release reads only the blocks its handle names; after the block size is edited it still finds the address', async (t) => {
  const { alloc, kv, cfg } = setup({ ranges: [[{ subnet: '10.25.0.0/20' }]], nodeName: 'n1' });
  for (let i = 0; i < 300; i++) await alloc.allocate({ containerID: `c${i}`, ifname: 'eth0' });
  let ranged = 0;
  const origRange = kv.range.bind(kv);
  kv.range = async (prefix: string) => { const m = await origRange(prefix); ranged += m.size; return m; };
  t.deepEqual(await alloc.release({ containerID: 'c7', ifname: 'eth0' }), ['10.25.0.9']);
  t.is(ranged, 0, 'no listing of the pool: the handle and its one block were read by key');
  // The same network with /24 blocks now: the handle's address maps to a block key that does not exist,
  // so the release falls back to searching every block rather than leak the address.
  const edited = new Allocator(kv, { ...cfg, blockSize: { v4: 24, v6: 122 } });
  t.deepEqual(await edited.release({ containerID: 'c200', ifname: 'eth0' }), ['10.25.0.202']);
  t.false((await alloc.list()).some((a) => a.containerID === 'c200'), 'released in the block that held it');
});

test('GC touches only this node\'s attachments, keeps young ones, and re-checks before releasing', async (t) => {
  const node = sharedStore({ ranges: [[{ subnet: '10.24.0.0/24' }]] });
  const n1 = node('n1');
  const n2 = node('n2');
  await n1.allocate({ containerID: 'a', ifname: 'eth0' }, [], '/run/netns/gone-a');
  await n2.allocate({ containerID: 'b', ifname: 'eth0' }, [], '/run/netns/gone-b');
  t.deepEqual(await n1.gc({ valid: [] , graceMs: 60_000 }), [], 'younger than the grace period: kept');
  const released = await n1.gc({ valid: [] });
  t.deepEqual(released.map((r) => r.containerID), ['a'], 'n1 releases its own stale attachment only');
  t.deepEqual((await n2.list()).map((a) => a.containerID), ['b'], 'n2\'s attachment survives n1\'s GC');
  // the re-check: a handle that changed after GC read it is not released
  const [h] = await n2.handles();
  t.is(await n2.release(h, h.version + 12345), null);
  t.deepEqual((await n2.list()).map((a) => a.containerID), ['b']);
  // staleness by record: the namespace is gone
  const byNetns = await n2.gc({ isStale: (x) => x.record.netns === '/run/netns/gone-b' });
  t.deepEqual(byNetns.map((r) => r.ip), ['10.24.0.64'], 'n2 had claimed the second /26 block');
});

test('forgetting a node releases its attachments and gives its blocks back to the pool', async (t) => {
  const node = sharedStore({ ranges: [[{ subnet: '10.25.0.0/25' }]] });
  const n1 = node('n1');
  const dead = node('dead');
  await dead.allocate({ containerID: 'x', ifname: 'eth0' });
  await n1.allocate({ containerID: 'y', ifname: 'eth0' });
  t.deepEqual((await n1.blockInfo()).map((b) => b.node).sort(), ['dead', 'n1']);
  const r = await n1.forgetNode('dead');
  t.deepEqual(r.released.map((a) => a.containerID), ['x']);
  t.deepEqual(r.blocksFreed, ['10.25.0.0/26']);
  t.deepEqual((await n1.blockInfo()).map((b) => b.node), ['n1']);
  // the freed block can be claimed again
  const z = await node('n3').allocate({ containerID: 'z', ifname: 'eth0' });
  t.is(formatIP(z.ips[0].ip), '10.25.0.2');
});

test('forgetting a node keeps a block other nodes borrowed from until they let go, and releases what it borrowed', async (t) => {
  // One /26 block in the pool: whoever comes second borrows from the first's block.
  const node = sharedStore({ ranges: [[{ subnet: '10.27.0.0/26' }]] });
  const dead = node('dead');
  const live = node('live');
  await dead.allocate({ containerID: 'd1', ifname: 'eth0' });
  const borrowed = await live.allocate({ containerID: 'l1', ifname: 'eth0' });
  t.deepEqual((await live.blockInfo()).map((b) => `${b.cidr} ${b.node} ${b.used}`), ['10.27.0.0/26 dead 2']);
  const first = await live.forgetNode('dead');
  t.deepEqual(first.released.map((a) => a.containerID), ['d1']);
  t.deepEqual(first.blocksFreed, []);
  t.deepEqual(first.blocksKept, ['10.27.0.0/26'], 'the live node\'s pod still holds an address in it');
  t.deepEqual(await live.holds({ containerID: 'l1', ifname: 'eth0' }), [formatIP(borrowed.ips[0].ip)], 'the borrower keeps its address');
  await live.release({ containerID: 'l1', ifname: 'eth0' });
  const second = await live.forgetNode('dead');
  t.deepEqual(second, { released: [], blocksFreed: ['10.27.0.0/26'], blocksKept: [] });
  t.deepEqual(await live.blockInfo(), []);
});

test('CAS: a lost race re-reads and retries; the winner\'s address is never handed out twice', async (t) => {
  const { alloc, kv } = setup({ ranges: [[{ subnet: '10.26.0.0/24' }]], nodeName: 'n1' });
  const realTxn = kv.txn.bind(kv);
  let interfered = 0;
  // Before each of the first three commits, a rival takes the address this one is about to take.
  const rival = new Allocator(kv, parseIpamConfig(conf({ dataDir: '/unused', ranges: [[{ subnet: '10.26.0.0/24' }]], nodeName: 'n1' })));
  const interfering: typeof kv.txn = async (tx) => {
    if (interfered < 3 && tx.put?.some((p) => p.key === 'handle/c1/eth0')) {
      interfered++;
      kv.txn = realTxn;
      await rival.allocate({ containerID: `rival${interfered}`, ifname: 'eth0' });
      kv.txn = interfering;
    }
    return realTxn(tx);
  };
  kv.txn = interfering;
  const mine = await alloc.allocate({ containerID: 'c1', ifname: 'eth0' });
  kv.txn = realTxn;
  const all = await alloc.list();
  t.is(interfered, 3, 'three commits lost their race');
  t.is(all.length, 4);
  t.is(new Set(all.map((a) => a.ip)).size, 4, 'no address twice');
  t.true(all.some((a) => a.containerID === 'c1' && a.ip === formatIP(mine.ips[0].ip)));
});

test('DEL after the network\'s ranges were edited still frees the address', async (t) => {
  const dataDir = mkdtempSync(join(tmpdir(), 'tether-ipam-'));
  const before = nodeAllocator(dataDir, 'n1', { ranges: [[{ subnet: '10.27.0.0/24' }]] });
  await before.allocate({ containerID: 'a', ifname: 'eth0' });
  const after = nodeAllocator(dataDir, 'n1', { ranges: [[{ subnet: '10.28.0.0/24' }]] });
  t.deepEqual(await after.release({ containerID: 'a', ifname: 'eth0' }), ['10.27.0.2']);
  t.deepEqual(await before.list(), [], 'nothing left allocated in the old range');
});
