import test from 'ava';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { runIn } from '../../conformance/spawn.js';
import { bigIntToIP, formatIP, ipToBigInt, parseCIDR, parseIP } from '../../lib/ip/addr.js';
import { FileKV } from '../../lib/store/file.js';
import { seal } from '../../tetherd/peers/auth.js';
import { digest } from '../../tetherd/peers/peers.js';
import { DIST, PeerLab, POOL, waitFor, type PeerLabNode } from '../helpers/peer-lab.js';

// Peer mode with the real agents (the compiled tetherd, no etcd) in namespaces on one underlay: the first
// split by agreement, allocations through tether-ipam's allocator on each node's embedded store, a node
// joining through one member, the underlay cut in two halves while both allocate, healed; a restart,
// a leave, a death and its reclaim. Serial: one lab, each step building on the last.

const lab = new PeerLab();
const udpSend = fileURLToPath(new URL('../helpers/udp-send.js', import.meta.url));
const addrs = (ns: PeerLabNode[]) => ns.map((n) => n.ip);
const WAIT = { ms: 60_000, every: 50 };
const tableOf = (n: PeerLabNode) => JSON.stringify(lab.status(n)?.table);
const converged = (ns: PeerLabNode[]) => ns.every((n) => tableOf(n) === tableOf(ns[0]) && lab.status(n)?.peers.filter((p) => p.state === 'live').length === ns.length);
const held = new Map<string, string>(); // address -> node, for every allocation made and not released

async function allocate(t: { fail(m: string): void }, n: PeerLabNode, count: number, tag: string): Promise<void> {
  const a = lab.allocator(n);
  for (let i = 0; i < count; i++) {
    // Code 11 while the node's blocks are full and tetherd is being given more: the runtime retries, so does this.
    const { value: r } = await waitFor(`an address on ${n.name}`, () => a.allocate({ containerID: `${n.name}-${tag}-${i}`, ifname: 'eth0' }).catch((e: { code?: number }) => { if (e.code === 11) return undefined; throw e; }), WAIT);
    const ip = r!.ips[0].ip.bytes.join('.');
    if (held.has(ip)) t.fail(`${ip} allocated on ${n.name} is held by ${held.get(ip)} already`);
    held.set(ip, n.name);
  }
}

/** Every address the nodes' stores hold, and how many are held twice across nodes. */
async function duplicates(ns: PeerLabNode[]): Promise<{ total: number; twice: string[] }> {
  const seen = new Map<string, string>();
  const twice: string[] = [];
  for (const n of ns) for (const x of await lab.allocator(n).list()) { if (seen.has(x.ip)) twice.push(x.ip); else seen.set(x.ip, n.name); }
  return { total: seen.size + twice.length, twice };
}

test.after.always('every namespace and agent is removed', async (t) => { t.deepEqual(await lab.cleanup(), []); });

test.serial('3 nodes: nobody splits alone; once all are up they agree on one table, each allocates from its own blocks only', async (t) => {
  const [n1, n2, n3] = [lab.addNode(), lab.addNode(), lab.addNode()];
  await lab.start(n1, addrs([n2, n3]));
  await waitFor('n1 says what it waits for', () => lab.status(n1)?.waiting?.includes('198.18.0.12'), WAIT);
  t.is(lab.status(n1)!.owned, 0);
  const early = await lab.allocator(n1).allocate({ containerID: 'too-early', ifname: 'eth0' }).catch((e: Error) => e);
  t.regex(String((early as Error).message), /owns no block/, 'no address before the split');
  await lab.start(n2, addrs([n1, n3]));
  await lab.start(n3, addrs([n1, n2]));
  await waitFor('one table on all three', () => converged([n1, n2, n3]), WAIT);
  const owned = [n1, n2, n3].map((n) => lab.status(n)!.owned);
  t.is(owned.reduce((a, b) => a + b), 64, 'the /20 in /26 blocks, all owned');
  t.true(owned.every((x) => x >= 21), `an even split: ${owned}`);
  for (const n of [n1, n2, n3]) await allocate(t, n, 40, 'first');
  t.deepEqual((await duplicates(lab.nodes)).twice, []);
  // The status cnictl shows: peers with their last contact, the table.
  const st = await runIn(undefined, join(DIST, 'cnictl'), ['status', '--agent-state', n1.health, '--conf-dir', join(n1.dir, 'none')], 20_000);
  t.is(st.status, 0, st.stderr);
  t.regex(st.stdout, /PEER\s+ADDRESS\s+STATE\s+LAST CONTACT/);
  t.regex(st.stdout, /n2\s+198\.18\.0\.12\s+live\s+\d+\.\d s ago/);
  t.regex(st.stdout, /10\.244\.0\.0\/26 \+\d+\s+n1\s+1/);
});

test.serial('datagrams without the key, mangled, or replayed are dropped and counted in /metrics', async (t) => {
  const [n1] = lab.nodes;
  const key = Buffer.from('lab-secret-0123456789abcdef0123456789');
  const config = digest(['lab', POOL, '26']);
  const msg = { type: 'state' as const, config, blocks: 64, members: [], retired: [], table: [] };
  const good = seal({ sender: 'intruder', seq: 1n, sentAt: Date.now(), message: msg }, key);
  const forged = seal({ sender: 'intruder', seq: 2n, sentAt: Date.now(), message: msg }, Buffer.from('another-key-0123456789abcdef'));
  const stale = seal({ sender: 'intruder', seq: 3n, sentAt: Date.now() - 3_600_000, message: msg }, key);
  const r = await runIn(lab.nodes[1].path, process.execPath, [udpSend, n1.ip, '6784', good.toString('hex'), good.toString('hex'), forged.toString('hex'), 'deadbeef', stale.toString('hex')], 15_000);
  t.is(r.status, 0, r.stderr);
  await waitFor('the drops counted', () => { const d = lab.status(n1)!.dropped; return d.replayed >= 1 && d.forged >= 1 && d.malformed >= 1 && d.stale >= 1; }, WAIT);
  const m = await runIn(n1.path, '/bin/busybox', ['wget', '-q', '-O-', 'http://127.0.0.1:9310/metrics'], 15_000);
  t.is(m.status, 0, m.stderr);
  for (const result of ['forged', 'malformed', 'replayed', 'stale']) t.regex(m.stdout, new RegExp(`tether_peer_messages_total\\{result="${result}"\\} [1-9]`));
  t.regex(m.stdout, /tether_peer_blocks\{kind="owned"\} \d+/);
});

test.serial('a fourth node joins through one member only and is given space; a restart keeps every block and address', async (t) => {
  const [n1, n2, n3] = lab.nodes;
  const n4 = lab.addNode();
  await lab.start(n4, [n1.ip]);
  await waitFor('n4 owns blocks and all agree', () => (lab.status(n4)?.owned ?? 0) > 0 && converged([n1, n2, n3, n4]), WAIT);
  await allocate(t, n4, 40, 'joined');
  const before = lab.status(n2)!;
  await lab.stop(n2, 'SIGKILL');
  await lab.start(n2, addrs([n1, n3]));
  await waitFor('n2 back in the same table', () => converged([n1, n2, n3, n4]), WAIT);
  t.is(lab.status(n2)!.owned, before.owned);
  t.is((await lab.allocator(n2).list()).length, 40, 'n2\'s addresses survive its agent being killed');
  t.deepEqual((await duplicates(lab.nodes)).twice, []);
});

test.serial('the underlay cut between halves: both sides keep allocating, healed: 0 duplicates and one table', async (t) => {
  const [n1, n2, n3, n4] = lab.nodes;
  lab.side([n3, n4], 'br1');
  await waitFor('each half stops hearing the other', () => (lab.status(n1)!.peers.find((p) => p.name === 'n3')!.lastContactMs ?? 0) > 1500, WAIT);
  const n4Before = lab.status(n4)!.owned;
  for (const n of [n1, n2, n3]) await allocate(t, n, 60, 'cut');
  await allocate(t, n4, 200, 'cut'); // n4 holds a few blocks: it needs space from n3, on its side of the cut
  // The donor can only be n3, the one member on n4's side: n3's own table shows the transfer.
  await waitFor('n4 given blocks by n3 during the cut', () => lab.status(n4)!.owned > n4Before && (lab.status(n3)!.peers.find((p) => p.name === 'n4')?.blocks ?? 0) > n4Before, WAIT);
  t.is(lab.status(n1)!.peers.find((p) => p.name === 'n4')!.blocks, n4Before, 'n1, across the cut, has not heard of it');
  t.not(tableOf(n1), tableOf(n4), 'the halves disagree while cut');
  lab.side([n3, n4], 'br0');
  const healed = Date.now();
  await waitFor('one table again', () => converged([n1, n2, n3, n4]), WAIT);
  t.log(`converged ${Date.now() - healed} ms after the heal (health files every 200 ms)`);
  const d = await duplicates(lab.nodes);
  t.deepEqual(d.twice, []);
  t.is(d.total, 40 * 3 + 40 + 60 * 3 + 200);
});

test.serial('a node leaving hands its blocks over; a dead one is reclaimed by one command when a majority agrees, a live one never', async (t) => {
  const [n1, n2, n3, n4] = lab.nodes;
  // n4 leaves: refused while its pods hold addresses, done once they are released.
  await lab.stop(n4);
  const refused = await runIn(n4.path, join(DIST, 'tetherd'), ['leave', '--config', n4.config], 30_000);
  t.is(refused.status, 1);
  t.regex(refused.stderr, /pods still hold addresses/);
  const a4 = lab.allocator(n4);
  for (const x of await a4.list()) { await a4.release({ containerID: x.containerID, ifname: x.ifname }); held.delete(x.ip); }
  const left = await runIn(n4.path, join(DIST, 'tetherd'), ['leave', '--config', n4.config], 30_000);
  t.is(left.status, 0, left.stderr);
  t.regex(left.stdout, /left; its \d+ blocks now belong to n[123]/);
  await waitFor('n4 left everywhere', () => [n1, n2, n3].every((n) => lab.status(n)!.peers.find((p) => p.name === 'n4')?.state === 'left') && converged([n1, n2, n3]), WAIT);
  // A live node cannot be reclaimed.
  t.is((await runIn(n1.path, join(DIST, 'tetherd'), ['reclaim', 'n2', '--config', n1.config], 15_000)).status, 0);
  await waitFor('the refusal', () => lab.status(n1)?.reclaim?.node === 'n2', WAIT);
  t.regex(lab.status(n1)!.reclaim!.result, /heard .* ago/);
  // n3 dies; after the vote silence (3 s), one command on n1 and n2's agreement give its blocks to n1.
  const n3blocks = lab.status(n1)!.peers.find((p) => p.name === 'n3')!.blocks;
  await lab.stop(n3, 'SIGKILL');
  await waitFor('n3 silent for the vote silence', () => (lab.status(n1)!.peers.find((p) => p.name === 'n3')!.lastContactMs ?? 0) > 3500 && (lab.status(n2)!.peers.find((p) => p.name === 'n3')!.lastContactMs ?? 0) > 3500, WAIT);
  const ownedBefore = lab.status(n1)!.owned;
  const rc = await runIn(n1.path, join(DIST, 'cnictl'), ['peers', 'reclaim', 'n3', '--agent-config', n1.config, '--timeout', '60'], 90_000);
  t.is(rc.status, 0, rc.stdout + rc.stderr);
  t.regex(rc.stdout, /n3: reclaimed; its blocks now belong to n1/);
  await waitFor('n3 retired on n2 too', () => lab.status(n2)!.peers.find((p) => p.name === 'n3')?.state === 'retired', WAIT);
  t.is(lab.status(n1)!.owned, ownedBefore + n3blocks);
  await waitFor('one table', () => converged([n1, n2]), WAIT);
  // The live nodes' pods kept their addresses.
  for (const n of [n1, n2]) t.true((await lab.allocator(n).list()).length >= 100, `${n.name} keeps its allocations`);
  t.deepEqual((await duplicates([n1, n2])).twice, []);
});

test.serial('the reclaimed node comes back: it learns so from the others, closes its blocks and allocates nothing; its heir allocates there; no address given twice', async (t) => {
  const [n1, n2, n3] = lab.nodes;
  const a3 = lab.allocator(n3);
  const old = await a3.list();
  t.true(old.length >= 100, 'n3\'s store still records its pods');
  await lab.start(n3, addrs([n1, n2]));
  await waitFor('n3 knows it was reclaimed', () => /reclaimed by the others/.test(lab.status(n3)?.waiting ?? ''), WAIT);
  const kv3 = new FileKV(join(n3.dir, 'ipam', 'lab'));
  const blocks3 = await waitFor('every block left in n3\'s store closed', async () => {
    const recs = [...(await kv3.range('block/')).values()].map((e) => JSON.parse(e.value) as { cidr: string; closed?: string });
    return recs.length > 0 && recs.every((r) => r.closed) ? recs : undefined;
  }, WAIT);
  for (let i = 0; i < 10; i++) t.like(await a3.allocate({ containerID: `n3-back-${i}`, ifname: 'eth0' }).catch((e) => e), { code: 11 }, 'n3 gives no address');
  await waitFor('n3 reports its closed blocks', () => lab.status(n3)?.closed === blocks3.value!.length, WAIT);
  // Its heir n1 allocates in n3's old blocks (addresses n3's pods do not hold; theirs went with the reclaim).
  const held3 = new Set(old.map((x) => x.ip));
  const a1 = lab.allocator(n1);
  const cidr = parseCIDR(blocks3.value![0].cidr)!;
  const free = Array.from({ length: 64 }, (_, i) => formatIP(bigIntToIP(ipToBigInt(cidr.ip) + BigInt(i), 4))).filter((ip) => !held3.has(ip)).slice(1, 6);
  for (const [i, ip] of free.entries()) t.like(await a1.allocate({ containerID: `n1-heir-${i}`, ifname: 'eth0' }, [parseIP(ip)!]), { existing: false });
  const fresh = [...(await a1.list()), ...(await lab.allocator(n2).list()), ...(await a3.list())].map((x) => x.ip).filter((ip) => !held3.has(ip));
  t.deepEqual(fresh.filter((ip, i) => fresh.indexOf(ip) !== i), [], 'no address twice');
  // n3's pods are deleted: its store empties, block by block.
  for (const x of old) { await a3.release({ containerID: x.containerID, ifname: x.ifname }); if (held.get(x.ip) === 'n3') held.delete(x.ip); }
  await waitFor('n3\'s store empty', async () => (await kv3.range('block/')).size === 0, WAIT);
  await waitFor('n3 reports none closed', () => lab.status(n3)?.closed === 0, WAIT);
  await lab.stop(n3);
});

test.serial('a node that joined through one member is reclaimed and comes back: nobody gossips to it any more, the members answer its messages, so it learns and allocates nothing', async (t) => {
  const [n1, n2] = lab.nodes;
  const n5 = lab.addNode();
  await lab.start(n5, [n1.ip]);
  await waitFor('n5 owns blocks and all agree', () => (lab.status(n5)?.owned ?? 0) > 0 && converged([n1, n2, n5]), WAIT);
  await allocate(t, n5, 5, 'joined');
  await lab.stop(n5, 'SIGKILL');
  await waitFor('n5 silent for the vote silence', () => [n1, n2].every((n) => (lab.status(n)!.peers.find((p) => p.name === 'n5')!.lastContactMs ?? 0) > 3500), WAIT);
  const rc = await runIn(n1.path, join(DIST, 'cnictl'), ['peers', 'reclaim', 'n5', '--agent-config', n1.config, '--timeout', '60'], 90_000);
  t.is(rc.status, 0, rc.stdout + rc.stderr);
  await waitFor('n5 retired on n2', () => lab.status(n2)!.peers.find((p) => p.name === 'n5')?.state === 'retired', WAIT);
  // Neither n1 nor n2 is configured with n5's address, and neither sends to a retired member: only the answer reaches it.
  t.false((JSON.parse(readFileSync(n1.config, 'utf8')) as { peers: { addresses: string[] } }).peers.addresses.includes(n5.ip));
  await lab.start(n5, [n1.ip]);
  await waitFor('n5 knows it was reclaimed', () => /reclaimed by the others/.test(lab.status(n5)?.waiting ?? ''), WAIT);
  t.like(await lab.allocator(n5).allocate({ containerID: 'n5-back', ifname: 'eth0' }).catch((e) => e), { code: 11 });
  await lab.stop(n5);
});
