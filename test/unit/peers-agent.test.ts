import test from 'ava';
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { AGENT_HOLD_KEY, AGENT_LEASE_KEY, Allocator } from '../../ipam/allocator.js';
import { blockKey } from '../../ipam/blocks.js';
import { parseIpamConfig } from '../../ipam/config.js';
import { FileKV } from '../../lib/store/file.js';
import { formatIP, parseCIDR, parseIP } from '../../lib/ip/addr.js';
import { digest, PeerNode, type Snapshot } from '../../tetherd/peers/peers.js';
import { AgentConfigError } from '../../tetherd/config.js';
import { KeyFileError, readKeyFile } from '../../tetherd/peers/auth.js';
import { parsePeerAgentConfig } from '../../tetherd/peers/config.js';
import { loadSnapshot, StateFileError } from '../../tetherd/peers/persist.js';
import { BlockCutter, syncStore, takeOut } from '../../tetherd/peers/store-sync.js';

const base = { store: 'peers', nodeName: 'n1', pool: '10.244.0.0/22', underlayIP: '198.18.0.11', peers: { addresses: ['198.18.0.12'] } };

test('peer config: defaults, and every bad field named with what it must be', (t) => {
  const c = parsePeerAgentConfig(base);
  t.like(c, { port: 6784, blockSize: 26, seed: false, keyFile: '/etc/tether/peers.key', voteSilenceMs: 60_000, reclaimAfterMs: 0, lowWater: 2, peers: ['198.18.0.12'] });
  const bad: [Record<string, unknown>, RegExp][] = [
    [{ ...base, etcd: { endpoints: ['http://x:2379'] } }, /"etcd" cannot be given with "store": "peers"/],
    [{ ...base, peers: {} }, /"peers.addresses" is empty/],
    [{ ...base, peers: { addresses: ['nope'] } }, /"peers.addresses" must be a list/],
    [{ ...base, pool: '10.0.0.0/8' }, /cuts 10.0.0.0\/8 into 262144 blocks/],
    [{ ...base, peers: { ...base.peers, voteSilence: 60, reclaimAfter: 30 } }, /reclaimAfter" must be 0 \(never\) or at least voteSilence/],
    [{ ...base, peers: { ...base.peers, keyFile: 'relative' } }, /"keyFile" must be an absolute path/],
    [{ ...base, mode: 'overlay' }, /must be "vxlan" \(blocks routed over the VXLAN overlay\), "bgp"/],
    [{ ...base, mode: 'vxlan', vni: 0 }, /"vni" must be an integer from 1/],
    [{ ...base, mode: 'vxlan', device: 'a/b' }, /"device"/],
  ];
  for (const [o, re] of bad) t.throws(() => parsePeerAgentConfig(o), { instanceOf: AgentConfigError, message: re }, re.source);
  t.is(parsePeerAgentConfig({ ...base, peers: { seed: true } }).seed, true, 'a seed needs no addresses');
  t.is(c.vxlan, undefined, 'no VXLAN device unless "mode": "vxlan"');
  t.like(parsePeerAgentConfig({ ...base, mode: 'vxlan', vni: 7, directRouting: true }).vxlan, { vni: 7, device: 'tether.7', port: 4789, directRouting: true, checkIntervalMs: 500 });
});

test('key file: at least 16 bytes, owner-only; state file: damaged is an error, absent is a first start', (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'peers-key-'));
  const k = join(dir, 'key');
  writeFileSync(k, 'short\n'); chmodSync(k, 0o600);
  t.throws(() => readKeyFile(k), { instanceOf: KeyFileError, message: /holds 5 bytes; at least 16/ });
  writeFileSync(k, 'a-long-enough-secret-0123456789\n'); chmodSync(k, 0o644);
  t.throws(() => readKeyFile(k), { instanceOf: KeyFileError, message: /readable by group or others.*chmod 600/ });
  chmodSync(k, 0o600);
  t.is(readKeyFile(k).toString(), 'a-long-enough-secret-0123456789');
  t.is(loadSnapshot(join(dir, 'none.json')), undefined);
  writeFileSync(join(dir, 's.json'), '{"format": "x"}');
  t.throws(() => loadSnapshot(join(dir, 's.json')), { instanceOf: StateFileError, message: /not a tether peer state/ });
});

const ipamConf = (dir: string) => parseIpamConfig({ cniVersion: '1.0.0', name: 'lab', ipam: { type: 'tether-ipam', ranges: [[{ subnet: '10.244.0.0/22' }]], blockSize: 26, dataDir: dir, nodeName: 'n1', agentBlocks: true } } as never);

test('agentBlocks: tether-ipam allocates only from the blocks the agent wrote, never claims one, and stops while the agent holds it', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'peers-ipam-'));
  const kv = new FileKV(join(dir, 'lab'));
  const a = new Allocator(new FileKV(join(dir, 'lab')), ipamConf(dir));
  const e = await a.allocate({ containerID: 'c0', ifname: 'eth0' }).catch((x: { code: number; message: string }) => x);
  t.like(e, { code: 11 });
  t.regex((e as unknown as Error).message, /tetherd \(peer mode\) has not yet vouched/, 'no agent has run: nothing');
  const cut = new BlockCutter({ ip: { family: 4, bytes: new Uint8Array([10, 244, 0, 0]) } as never, prefix: 22 }, 26);
  await syncStore(kv, cut, 'n1', new Set(), null, 60_000);
  const e2 = await a.allocate({ containerID: 'c0', ifname: 'eth0' }).catch((x: { code: number; message: string }) => x);
  t.like(e2, { code: 11 });
  t.regex((e2 as unknown as Error).message, /owns no block/, 'the agent runs, the node owns nothing yet');
  t.deepEqual([...(await kv.range('block/')).keys()], [], 'nothing claimed by IPAM');
  t.is(cut.count, 16);
  t.is(cut.index('10.244.1.64/26'), 5);
  t.is(cut.index('10.244.1.65/26'), -1);
  t.is(cut.index('10.245.0.0/26'), -1);
  const r = await syncStore(kv, cut, 'n1', new Set([5, 6]), null, 60_000);
  t.deepEqual(r.added, [5, 6]);
  const ips: string[] = [];
  for (let i = 0; i < 70; i++) ips.push((await a.allocate({ containerID: `c${i}`, ifname: 'eth0' })).ips[0].ip.bytes.join('.'));
  t.true(ips.every((ip) => /^10\.244\.1\.(6[4-9]|[7-9]\d|1\d\d)$/.test(ip)), 'inside 10.244.1.64/26 and 10.244.1.128/26');
  t.like(await a.allocate({ containerID: 'x', ifname: 'eth0' }, [{ family: 4, bytes: new Uint8Array([10, 244, 0, 5]) } as never]).catch((x) => x), { code: 7 }, 'a requested address outside our blocks');
  // Block 6 has addresses: it cannot leave the store; the table giving it away makes it "foreign", never deleted.
  t.deepEqual(await takeOut(kv, cut, [6]), []);
  const r2 = await syncStore(kv, cut, 'n1', new Set([5, 7]), 'held for a test', 60_000);
  t.deepEqual(r2.foreign, [6]);
  t.deepEqual(r2.added, [7]);
  t.truthy(await kv.get(blockKey(cut.cidr(6))));
  t.like(await a.allocate({ containerID: 'held', ifname: 'eth0' }).catch((x) => x), { code: 11, message: 'tetherd holds allocation on this node: held for a test' });
  t.truthy(await kv.get(AGENT_HOLD_KEY));
  await syncStore(kv, cut, 'n1', new Set([5, 7]), null, 60_000);
  t.is(await kv.get(AGENT_HOLD_KEY), undefined);
  t.like(await a.allocate({ containerID: 'after-hold', ifname: 'eth0' }), { existing: false }, 'allocates again once the hold is lifted');
  // The agent's word runs out (it died, or the node booted without it): nothing new until it vouches again.
  const lease = (await kv.get(AGENT_LEASE_KEY))!;
  t.true(JSON.parse(lease.value).until > Date.now() + 50_000, 'the word given for the lease time');
  await kv.txn({ if: [], put: [{ key: AGENT_LEASE_KEY, value: JSON.stringify({ until: Date.now() - 5000 }) }] });
  const stale = await a.allocate({ containerID: 'stale', ifname: 'eth0' }).catch((x) => x);
  t.is(stale.code, 11);
  t.regex(stale.message, /tetherd \(peer mode\) last vouched for this node's blocks \d+ s ago/);
  await kv.txn({ if: [], del: [AGENT_LEASE_KEY] });
  t.regex((await a.allocate({ containerID: 'none', ifname: 'eth0' }).catch((x) => x)).message, /has not yet vouched/);
  t.like(await a.allocate({ containerID: 'c0', ifname: 'eth0' }), { existing: true }, 'a retried ADD of an attachment that has its address still answers');
  await syncStore(kv, cut, 'n1', new Set([5, 7]), null, 60_000);
  t.like(await a.allocate({ containerID: 'vouched', ifname: 'eth0' }), { existing: false });
  await a.release({ containerID: 'after-hold', ifname: 'eth0' }); await a.release({ containerID: 'vouched', ifname: 'eth0' });
  t.deepEqual(await takeOut(kv, cut, [7]), [7], 'an empty block leaves');
  t.is(await kv.get(blockKey(cut.cidr(7))), undefined);
});

/**
 * Three nodes as the agent runs them, with the real pieces and no sockets: PeerNode's protocol, messages
 * handed over directly, syncStore into each node's own embedded store, and tether-ipam's Allocator on it.
 */
function reclaimRig(t: { teardown(fn: () => void): void }) {
  const dir = mkdtempSync(join(tmpdir(), 'peers-reclaimed-'));
  const cut = new BlockCutter(parseCIDR('10.244.0.0/22')!, 26);
  const names = ['a', 'b', 'c'];
  const addr = (n: string) => `198.18.0.${11 + names.indexOf(n)}`;
  let now = 1_700_000_000_000;
  const make = (name: string, saved?: Snapshot) => {
    const peer = new PeerNode({ name, address: addr(name), port: 6784, vtepMAC: '', config: digest(['lab', '10.244.0.0/22', '26']), blocks: cut.count, initialPeers: names.filter((x) => x !== name).map(addr), seed: false, voteSilenceMs: 3000, reclaimAfterMs: 0, reachableMs: 1500, lowWater: 2 }, now, saved);
    const kv = new FileKV(join(dir, name, 'lab'));
    const cfg = parseIpamConfig({ cniVersion: '1.0.0', name: 'lab', ipam: { type: 'tether-ipam', ranges: [[{ subnet: '10.244.0.0/22' }]], blockSize: 26, dataDir: join(dir, name), nodeName: name, agentBlocks: true } } as never);
    return { name, peer, kv, ipam: new Allocator(new FileKV(join(dir, name, 'lab')), cfg) };
  };
  type N = ReturnType<typeof make>;
  const nodes = new Map(names.map((n) => [n, make(n)]));
  /** The agent's step: the protocol's own decisions, then the store made to match (as agent.ts does). */
  const step = async (n: N) => {
    n.peer.tick(now);
    const hold = n.peer.waiting || n.peer.isRetired ? 'held' : null;
    return syncStore(n.kv, cut, n.name, new Set(n.peer.waiting ? [] : n.peer.owned()), hold, 60_000);
  };
  const hear = (to: N, from: N) => to.peer.receive(from.peer.message(), from.name, now);
  const round = async (among: N[]) => { for (const x of among) for (const y of among) if (x !== y) hear(x, y); for (const x of among) await step(x); };
  const alloc = (n: N, id: string, ip?: string) => n.ipam.allocate({ containerID: id, ifname: 'eth0' }, ip ? [parseIP(ip)!] : []).then((r) => formatIP(r.ips[0].ip), (e: { code: number; message: string }) => e);
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  return { nodes, cut, make, step, round, alloc, hear, advance: (ms: number) => { now += ms; }, get now() { return now; } };
}

test('a reclaimed node back from a restart: its blocks closed, it allocates nothing, its heir allocates there; no address twice (real store sync and allocator)', async (t) => {
  const r = reclaimRig(t);
  const [a, b, c] = ['a', 'b', 'c'].map((n) => r.nodes.get(n)!);
  await r.round([a, b, c]); await r.round([a, b, c]);
  t.deepEqual(c.peer.owned(), [11, 12, 13, 14, 15], 'the split');
  const cHeld: string[] = [];
  for (let i = 0; i < 3; i++) cHeld.push(await r.alloc(c, `c${i}`) as string);
  t.deepEqual(cHeld, ['10.244.2.192', '10.244.2.193', '10.244.2.194'], 'c allocates in its first block, 10.244.2.192/26');
  // c dies (its state saved now); after the vote silence a proposes itself heir, b agrees.
  const saved = c.peer.snapshot(r.now);
  r.advance(4000);
  t.is(a.peer.proposeReclaim('c', r.now), null);
  for (let i = 0; i < 3; i++) await r.round([a, b]);
  t.true(a.peer.retired.has('c') && b.peer.retired.has('c'));
  t.deepEqual(a.peer.owned().filter((i) => i >= 11), [11, 12, 13, 14, 15], 'a owns c\'s blocks');
  // The heir allocates in c's first block (its store got the block empty: c's pods there are c's, reclaimed with it).
  const aNew: string[] = [];
  for (let i = 0; i < 5; i++) aNew.push(await r.alloc(a, `a${i}`, `10.244.2.${200 + i}`) as string);
  t.true(aNew.every((ip) => typeof ip === 'string'), String(aNew));
  // c comes back from its saved state: it waits for word, then hears it was reclaimed.
  const c2 = r.make('c', saved);
  r.nodes.set('c', c2);
  t.true(c2.peer.waiting);
  await r.step(c2);
  t.like(await r.alloc(c2, 'c-early'), { code: 11 }, 'nothing while it waits for word');
  r.hear(c2, a);
  const report = await r.step(c2);
  t.true(c2.peer.isRetired);
  t.deepEqual(report.foreign, [11], 'the block with c\'s pods stays in its store');
  const rec = JSON.parse((await c2.kv.get(blockKey(r.cut.cidr(11))))!.value) as { closed?: string; node: string };
  t.regex(rec.closed ?? '', /another node/, 'closed');
  for (let i = 0; i < 20; i++) t.like(await r.alloc(c2, `c-new${i}`), { code: 11 }, 'c gives no new address');
  // Even with the hold key gone and a fresh word (an agent gone wrong), the closed block gives nothing.
  await c2.kv.txn({ if: [], del: ['agent/hold'], put: [{ key: AGENT_LEASE_KEY, value: JSON.stringify({ until: Date.now() + 60_000 }) }] });
  const e = await r.alloc(c2, 'c-nohold') as unknown as { code: number; message: string };
  t.is(e.code, 11);
  t.regex(e.message, /owns no block/);
  const asked = await r.alloc(c2, 'c-asked', '10.244.2.240') as unknown as { code: number; message: string };
  t.is(asked.code, 7, 'nor a requested address in its old block');
  t.regex(asked.message, /gives no new address: the ownership table gives this block to another node/);
  // DEL of c's pods still works; once the block is empty it leaves c's store.
  for (let i = 0; i < 3; i++) await c2.ipam.release({ containerID: `c${i}`, ifname: 'eth0' });
  const after = await r.step(c2);
  t.deepEqual(after.removed, [11]);
  t.deepEqual([...(await c2.kv.range('block/')).keys()], []);
  // Every address given out after the reclaim is given once.
  const all = [...(await a.ipam.list()), ...(await b.ipam.list()), ...(await c2.ipam.list())].map((x) => x.ip);
  t.deepEqual(all.filter((ip, i) => all.indexOf(ip) !== i), []);
  t.true(aNew.every((ip) => all.includes(ip)));
});

test('a node reclaimed while cut off (never restarted) closes the blocks it lost as soon as it hears; owned blocks reopen', async (t) => {
  const r = reclaimRig(t);
  const [a, b, c] = ['a', 'b', 'c'].map((n) => r.nodes.get(n)!);
  await r.round([a, b, c]); await r.round([a, b, c]);
  for (let i = 0; i < 3; i++) await r.alloc(c, `c${i}`);
  r.advance(4000);
  a.peer.proposeReclaim('c', r.now);
  for (let i = 0; i < 3; i++) await r.round([a, b]);
  await r.step(c);
  t.is(typeof await r.alloc(c, 'c-cut'), 'string', 'cut off, c does not know yet (the documented limit)');
  r.hear(c, a);
  await r.step(c);
  t.like(await r.alloc(c, 'c-healed'), { code: 11 });
  // The closing is undone only by the table: a block marked closed that the node does own is reopened.
  const key = blockKey(r.cut.cidr(0));
  const e = (await a.kv.get(key))!;
  t.true(await a.kv.txn({ if: [{ key, version: e.version }], put: [{ key, value: JSON.stringify({ ...JSON.parse(e.value), closed: 'test' }) }] }));
  t.deepEqual((await r.step(a)).reopened, [0]);
});
