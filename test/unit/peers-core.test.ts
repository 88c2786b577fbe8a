import test from 'ava';
import { open, ReplayGuard, seal, Sequence } from '../../tetherd/peers/auth.js';
import { digest, PeerNode, type PeerOptions } from '../../tetherd/peers/peers.js';
import { Table } from '../../tetherd/peers/table.js';
import { decodeBody, encodeBody, MAX_DATAGRAM, WireError, type Frame, type Member, type StateMessage } from '../../tetherd/peers/wire.js';

const KEY = Buffer.from('k'.repeat(32));
const member = (name: string, o: Partial<Member> = {}): Member => ({
  name, version: 3, address: '198.18.0.1', port: 6784, vtepMAC: '02:00:00:00:00:01', initial: '0123456789abcdef', hasTable: true, left: false, free: 2, wants: 0,
  votes: [{ dead: 'n9', heir: name }], ...o,
});
const state = (o: Partial<StateMessage> = {}): StateMessage => ({
  type: 'state', config: 'fedcba9876543210', blocks: 64, members: [member('n1'), member('n2', { address: 'fd00::2', vtepMAC: '', votes: [] })],
  retired: ['n9'], table: [{ start: 0, count: 32, owner: 'n1', version: 1 }, { start: 32, count: 31, owner: 'n2', version: 4 }, { start: 63, count: 1, owner: '', version: 0 }], ...o,
});
const frame = (o: Partial<Frame> = {}): Frame => ({ sender: 'n1', seq: 17n, sentAt: 1_700_000_000_000, message: state(), ...o });

test('codec: a state message round-trips exactly through the bytes', (t) => {
  const f = frame();
  t.deepEqual(decodeBody(encodeBody(f)), f);
});

test('codec: limits and structure are checked (run order, owner/version, duplicates, trailing bytes, sizes)', (t) => {
  const bad: [string, Partial<StateMessage> | Partial<Frame>, RegExp][] = [
    ['overlapping runs', { message: state({ table: [{ start: 0, count: 10, owner: 'n1', version: 1 }, { start: 5, count: 1, owner: 'n1', version: 1 }] }) }, /out of order/],
    ['a run past the pool', { message: state({ table: [{ start: 60, count: 10, owner: 'n1', version: 1 }] }) }, /outside 64 blocks/],
    ['an owned run at version 0', { message: state({ table: [{ start: 0, count: 1, owner: 'n1', version: 0 }] }) }, /version/],
    ['a member twice', { message: state({ members: [member('n1'), member('n1')] }) }, /twice/],
    ['a bad node name', { sender: 'no spaces allowed' }, /not a node name/],
    ['a bad MAC', { message: state({ members: [member('n1', { vtepMAC: 'zz' })] }) }, /malformed/],
  ];
  for (const [what, o, re] of bad) {
    const b = encodeBody({ ...frame(), ...(o as Partial<Frame>) });
    t.throws(() => decodeBody(b), { instanceOf: WireError, message: re }, what);
  }
  t.throws(() => decodeBody(Buffer.concat([encodeBody(frame()), Buffer.from([0])])), { instanceOf: WireError, message: /trailing/ });
  t.throws(() => decodeBody(encodeBody(frame()).subarray(0, 40)), { instanceOf: WireError, message: /truncated/ });
  // A message that would not fit one datagram is refused when written, not sent cut.
  const many = Array.from({ length: 1024 }, (_, i) => member(`node-with-a-rather-long-name-${i}`, { votes: Array.from({ length: 8 }, () => ({ dead: 'x'.repeat(60), heir: 'y'.repeat(60) })) }));
  t.throws(() => encodeBody(frame({ message: state({ members: many }) })), { instanceOf: WireError, message: new RegExp(`over ${MAX_DATAGRAM}`) });
});

test('auth: a sealed frame opens with the key; another key, one flipped bit, a short or huge datagram are dropped with their reason', (t) => {
  const b = seal(frame(), KEY);
  const o = open(b, KEY);
  t.true(o.ok);
  if (o.ok) t.deepEqual(o.frame, frame());
  t.like(open(b, Buffer.from('x'.repeat(32))), { ok: false, drop: 'forged' });
  for (const at of [0, 10, b.length - 40, b.length - 1]) {
    const c = Buffer.from(b); c[at] ^= 1;
    t.like(open(c, KEY), { ok: false, drop: 'forged' }, `bit flipped at ${at}`);
  }
  t.like(open(b.subarray(0, 20), KEY), { ok: false, drop: 'malformed' });
  t.like(open(Buffer.alloc(MAX_DATAGRAM + 1), KEY), { ok: false, drop: 'malformed' });
});

test('replay: a copy, an older sequence and a send time outside the window are refused; a newer one passes', (t) => {
  const g = new ReplayGuard(30_000);
  const now = 1_700_000_000_000;
  t.true(g.check(frame({ seq: 10n, sentAt: now }), now).ok);
  t.like(g.check(frame({ seq: 10n, sentAt: now }), now), { ok: false, drop: 'replayed' });
  t.like(g.check(frame({ seq: 9n, sentAt: now }), now), { ok: false, drop: 'replayed' });
  t.true(g.check(frame({ seq: 11n, sentAt: now }), now).ok);
  t.true(g.check(frame({ sender: 'n2', seq: 1n, sentAt: now }), now).ok, 'each sender has its own sequence');
  t.like(g.check(frame({ seq: 99n, sentAt: now - 31_000 }), now), { ok: false, drop: 'stale' });
  t.like(g.check(frame({ seq: 99n, sentAt: now + 31_000 }), now), { ok: false, drop: 'stale' });
  // A restarted sender (its sequence is the clock in µs) is above what it sent before.
  const a = new Sequence(); const s1 = a.next(now); const s2 = a.next(now);
  t.true(s2 > s1);
  t.true(new Sequence().next(now + 1) > s2);
});

test('table: split is contiguous and the same whatever the order of names; merge keeps the higher version', (t) => {
  const a = new Table(10); a.split(['c', 'a', 'b']);
  const b = new Table(10); b.split(['b', 'c', 'a']);
  t.true(a.equals(b));
  t.deepEqual(a.runs().map((r) => [r.owner, r.count]), [['a', 4], ['b', 3], ['c', 3]]);
  t.true(a.transfer('a', 'c', [0, 1]));
  t.false(a.transfer('a', 'c', [0]), 'a no longer owns block 0');
  t.false(a.transfer('b', 'a', [4, 9]), 'b does not own block 9: nothing moves');
  t.is(a.get(4).owner, 'b');
  t.deepEqual(b.merge(a.runs()).changed, [0, 1]);
  t.true(b.equals(a));
  t.deepEqual(a.merge([{ start: 0, count: 2, owner: 'b', version: 1 }]), { changed: [], clashes: 0 }, 'older versions change nothing');
});

test('table: an equal-version clash (two seeds) is settled the same way on both sides, and counted', (t) => {
  const a = new Table(4); a.split(['x']);
  const b = new Table(4); b.split(['w']);
  const ra = a.runs(); const rb = b.runs();
  t.is(a.merge(rb).clashes, 4);
  t.is(b.merge(ra).clashes, 4);
  t.true(a.equals(b));
  t.is(a.get(0).owner, 'w');
});

const opts = (name: string, o: Partial<PeerOptions> = {}): PeerOptions => ({
  name, address: name, port: 6784, vtepMAC: '', config: digest(['t']), blocks: 12, initialPeers: [], seed: false, voteSilenceMs: 1000, reclaimAfterMs: 0, reachableMs: 500, lowWater: 2, ...o,
});

test('split: waits for every configured peer with the same peer list; a node alone never splits (no split brain)', (t) => {
  const now = 0;
  const a = new PeerNode(opts('a', { initialPeers: ['b', 'c'] }), now);
  a.tick(now);
  t.false(a.self.hasTable);
  t.regex(a.splitProblem()!, /waiting for the configured peers b, c/);
  const b = new PeerNode(opts('b', { initialPeers: ['a', 'c'] }), now);
  const c = new PeerNode(opts('c', { initialPeers: ['a', 'b', 'x'] }), now); // another list: no agreement
  a.receive(b.message(), 'b', now); a.receive(c.message(), 'c', now);
  a.tick(now);
  t.false(a.self.hasTable, 'c was configured with another peer list');
  const c2 = new PeerNode(opts('c', { initialPeers: ['a', 'b'] }), now);
  c2.self.version = 5;
  a.receive(c2.message(), 'c', now);
  a.tick(now);
  t.true(a.self.hasTable);
  t.deepEqual([a.owned().length, a.table.ownedBy('b').length, a.table.ownedBy('c').length], [4, 4, 4]);
});

test('split: a fresh node whose peers already hold a table waits for it rather than splitting on its own', (t) => {
  const a = new PeerNode(opts('a', { seed: true }), 0);
  a.tick(0);
  t.is(a.owned().length, 12);
  const b = new PeerNode(opts('b', { initialPeers: ['a'] }), 0);
  const withTable = a.message();
  b.receive({ ...withTable, table: [{ start: 0, count: 12, owner: '', version: 0 }] }, 'a', 0); // a record saying "I have a table", without it
  b.tick(0);
  t.false(b.self.hasTable);
  t.regex(b.splitProblem()!, /waiting for the table/);
  b.receive(withTable, 'a', 0);
  t.true(b.self.hasTable);
  t.is(b.owned().length, 0);
});

test('reclaim: refused while the node is heard; a majority vote makes one heir; the heir alone takes the blocks', (t) => {
  const names = ['a', 'b', 'c', 'd'];
  const nodes = names.map((n) => new PeerNode(opts(n, { initialPeers: names }), 0));
  const exchange = (now: number, alive = names) => { for (const x of nodes) for (const y of nodes) if (x !== y && alive.includes(x.name) && alive.includes(y.name)) y.receive(x.message(), x.name, now); for (const x of nodes) if (alive.includes(x.name)) x.tick(now); };
  exchange(0); exchange(0);
  t.true(nodes.every((n) => n.self.hasTable));
  const [a, b, c] = nodes;
  t.regex(a.proposeReclaim('d', 500)!, /heard 1 s ago|heard 0 s ago/);
  // d dies; 2 s later a proposes; b and c vote once they too have not heard d for 1 s.
  exchange(400, ['a', 'b', 'c']);
  t.is(a.proposeReclaim('d', 2000), null);
  exchange(2100, ['a', 'b', 'c']);
  t.regex(b.proposeReclaim('d', 2150)!, /already voted a heir of d/, 'one vote per dead node, for the first heir proposed');
  exchange(2200, ['a', 'b', 'c']); exchange(2300, ['a', 'b', 'c']);
  for (const n of [a, b, c]) t.true(n.retired.has('d'), `${n.name} sees d retired`);
  t.is(a.owned().length, 6, 'a owns its share and d\'s');
  t.is(b.owned().length, 3);
  t.regex(c.proposeReclaim('d', 3000)!, /already reclaimed/);
});

test('automatic reclaim: after reclaimAfter of silence the first live node by name proposes itself, the others agree, nobody acts earlier', (t) => {
  const names = ['a', 'b', 'c', 'd'];
  const nodes = names.map((n) => new PeerNode(opts(n, { initialPeers: names, reclaimAfterMs: 5000 }), 0));
  const exchange = (now: number, alive: string[]) => {
    for (const x of nodes) for (const y of nodes) if (x !== y && alive.includes(x.name) && alive.includes(y.name)) y.receive(x.message(), x.name, now);
    for (const x of nodes) if (alive.includes(x.name)) x.tick(now);
  };
  exchange(0, names); exchange(0, names);
  const live = ['b', 'c', 'd'];
  // a dies at 0; the survivors keep talking every 500 ms.
  for (let now = 500; now < 5000; now += 500) exchange(now, live);
  t.false(nodes.some((n) => n.retired.has('a')), 'not before reclaimAfter');
  t.deepEqual(nodes[1].self.votes, []);
  for (let now = 5000; now <= 6500; now += 500) exchange(now, live);
  for (const n of nodes.slice(1)) t.true(n.retired.has('a'), `${n.name} sees a reclaimed`);
  t.is(nodes[1].owned().length, 6, 'b, the first live node by name, is the heir');
  t.true(nodes.slice(1).every((n) => n.self.votes.some((v) => v.dead === 'a' && v.heir === 'b')));
});

/**
 * The bench's race (bench/peers.ts, 10 nodes): a node that just asked for space is stopped and leaves
 * while a donor, not yet told, gives it blocks. Before the fix the leaving node stopped as soon as its
 * heir confirmed its own blocks, and the donated ones stayed in the left member's name on every node for
 * good (a left node allocates nothing, and no reclaim takes a left member's blocks).
 */
test('leave: blocks a donor gave before it heard of the leave are handed on; the leave is settled only when every live member knows', (t) => {
  let now = 0;
  const names = ['a', 'b', 'c'];
  const o = (n: string) => opts(n, { blocks: 24, initialPeers: names.filter((x) => x !== n) });
  const nodes = new Map(names.map((n) => [n, new PeerNode(o(n), now)]));
  const send = (from: string, to: string) => { nodes.get(to)!.receive(nodes.get(from)!.message(), from, now); };
  const all = () => { for (const x of names) for (const y of names) if (x !== y) send(x, y); for (const n of nodes.values()) n.tick(now); };
  all(); all();
  const [a, b, c] = names.map((n) => nodes.get(n)!);
  t.deepEqual(names.map((n) => a.table.ownedBy(n).length), [8, 8, 8]);
  // c's store fills: it asks for 2 blocks; b has pods too, so a is the donor with most free blocks.
  a.setSupply(8); b.setSupply(5); c.setSupply(0);
  now = 100; all();
  const d = a.donations(a.owned(), now);
  t.deepEqual(d.map((x) => [x.to, x.blocks.length]), [['c', 2]]);
  t.true(a.give('c', d[0].blocks));
  // Its message to c is lost (c's agent is being stopped); c's pods go and it leaves.
  now = 200;
  t.is(c.leave(now), null);
  const cBlocks = names.map((n) => c.table.ownedBy(n).length);
  t.deepEqual(cBlocks, [16, 8, 0], 'c handed its 8 blocks to a (fewest, then the name that sorts first)');
  send('c', 'a'); send('c', 'b'); send('a', 'c');
  t.deepEqual(c.strays(), d[0].blocks, 'a\'s answer shows it gave c two blocks before it heard of the leave');
  t.false(c.leaveSettled(now, 1000), 'not settled while the table gives c blocks');
  t.true(c.handOn(c.strays()));
  t.deepEqual(c.strays(), []);
  send('c', 'a'); send('c', 'b'); send('a', 'c');
  t.false(c.leaveSettled(now, 1000), 'b has not answered yet');
  send('b', 'c');
  t.true(c.leaveSettled(now, 1000), 'every live member sent back c\'s left record, and took what c handed on');
  for (const n of [a, b]) for (const x of [a, b]) if (n !== x) send(n.name, x.name);
  for (const n of nodes.values()) {
    t.deepEqual(n.table.ownedBy('c'), [], `${n.name}: no block in the left member's name`);
    t.true(n.table.owners.every((x) => x === 'a' || x === 'b'), `${n.name}: every block owned by a live member`);
    t.true(n.table.equals(a.table), `${n.name}: one table`);
  }
  t.true(a.owned().length + b.owned().length === 24);
});

test('leave: a live member that is silent since the leave is not waited for past quietMs; one that spoke is', (t) => {
  let now = 0;
  const names = ['a', 'b', 'c'];
  const nodes = new Map(names.map((n) => [n, new PeerNode(opts(n, { initialPeers: names.filter((x) => x !== n) }), now)]));
  const send = (from: string, to: string) => { nodes.get(to)!.receive(nodes.get(from)!.message(), from, now); };
  for (let k = 0; k < 2; k++) { for (const x of names) for (const y of names) if (x !== y) send(x, y); for (const n of nodes.values()) n.tick(now); }
  const c = nodes.get('c')!;
  now = 1000;
  t.is(c.leave(now), null);
  send('c', 'a'); send('a', 'c');
  t.false(c.leaveSettled(now + 100, 500), 'b (down) may still be answering');
  t.true(c.leaveSettled(now + 500, 500), 'b said nothing since the leave for quietMs: not waited for');
  // b speaks (an older state, sent before it heard of the leave): now it is waited for, until it answers.
  const stale = nodes.get('b')!.message();
  send('c', 'b');
  c.receive(stale, 'b', now + 600);
  t.false(c.leaveSettled(now + 700, 500));
  c.receive(nodes.get('b')!.message(), 'b', now + 800);
  t.true(c.leaveSettled(now + 800, 500));
});

test('donations: a donor back from a restart gives nothing to a member it has not heard since (its saved record may be of a node that left)', (t) => {
  const names = ['a', 'b'];
  const a = new PeerNode(opts('a', { blocks: 24, initialPeers: ['b'] }), 0);
  const b = new PeerNode(opts('b', { blocks: 24, initialPeers: ['a'] }), 0);
  for (let k = 0; k < 2; k++) { a.receive(b.message(), 'b', 0); b.receive(a.message(), 'a', 0); a.tick(0); b.tick(0); }
  t.deepEqual(names.map((n) => a.table.ownedBy(n).length), [12, 12]);
  b.setSupply(0);
  a.receive(b.message(), 'b', 10);
  const saved = a.snapshot(10);
  const a2 = new PeerNode(opts('a', { blocks: 24, initialPeers: ['b'] }), 20, saved);
  t.deepEqual(a2.donations(a2.owned(), 20), [], 'b wants, but a has not heard it since its start');
  a2.receive(b.message(), 'b', 30);
  t.deepEqual(a2.donations(a2.owned(), 30).map((d) => [d.to, d.blocks.length]), [['b', 2]]);
});
