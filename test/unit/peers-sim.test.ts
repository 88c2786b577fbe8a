import test from 'ava';
import { mulberry32 } from '../helpers/random.js';
import { PeerSim, type SimNode } from '../helpers/peer-sim.js';

// The 'never a duplicate' invariant, checked after every 10 ms step of a simulated network with loss,
// duplicates, reordering, partitions, restarts and reclaims: no block is ever in two live nodes'
// stores at once (a block is where addresses are allocated, so this is 0 duplicate addresses), and
// after the network heals every node holds the same table. Seeded: a failure replays from its seed.

const churn = (sim: PeerSim, rate = 0.3) => (n: SimNode) => {
  const x = sim.r();
  if (x < rate) sim.allocate(n); else if (x < rate * 1.6) sim.release(n);
};

function settle(sim: PeerSim, limitMs: number): number {
  const start = sim.now;
  while (!sim.converged()) {
    if (sim.now - start > limitMs) return -1;
    sim.run(100);
  }
  return sim.now - start;
}

test('3 to 10 nodes split by agreement, lossy churn with random partitions: 0 blocks held twice, converged after heal', (t) => {
  const figures: number[] = [];
  for (let seed = 1; seed <= 24; seed++) {
    const r = mulberry32(seed);
    const size = 3 + (seed % 8);
    const sim = new PeerSim(r, 16 * size);
    const names = Array.from({ length: size }, (_, i) => `n${i}`);
    for (const n of names) { sim.add(n, { initialPeers: names }); sim.seedsOf.set(n, names); }
    sim.loss = 0.2; sim.dup = 0.1;
    for (let round = 0; round < 8; round++) {
      // A random cut into two sides (sometimes none), then churn on both sides for a while.
      for (const n of names) sim.group.set(n, r() < 0.5 ? 0 : 1);
      sim.run(500 + Math.floor(r() * 1500), churn(sim));
    }
    for (const n of names) sim.group.set(n, 0);
    sim.loss = 0; sim.dup = 0;
    const took = settle(sim, 20_000);
    t.true(took >= 0, `seed ${seed}: ${size} nodes converged`);
    figures.push(took);
    t.is(sim.doubleHeld, 0, `seed ${seed}: no block in two stores at once`);
    t.true([...sim.nodes.values()].every((n) => n.peer.self.hasTable), `seed ${seed}: every node split`);
    const total = [...sim.nodes.values()].reduce((s, n) => s + n.peer.owned().length, 0);
    t.is(total, 16 * size, `seed ${seed}: every block owned by exactly one node`);
  }
  t.log(`converged after heal in ${Math.min(...figures)}-${Math.max(...figures)} ms of simulated time`);
});

test('one seed, nine joining through it alone: every node gets space by donation, none held twice', (t) => {
  for (let seed = 1; seed <= 8; seed++) {
    const r = mulberry32(1000 + seed);
    const sim = new PeerSim(r, 64);
    sim.add('s', { seed: true });
    sim.run(200);
    for (let i = 1; i <= 9; i++) { const n = `j${i}`; sim.add(n); sim.seedsOf.set(n, ['s']); sim.run(100 + Math.floor(r() * 300), churn(sim, 0.1)); }
    sim.loss = 0.1;
    sim.run(4000, churn(sim, 0.2));
    sim.loss = 0;
    t.true(settle(sim, 20_000) >= 0, `seed ${seed}: converged`);
    t.is(sim.doubleHeld, 0, `seed ${seed}`);
    for (const n of sim.nodes.values()) t.true(n.peer.owned().length >= 1, `seed ${seed}: ${n.name} owns space`);
  }
});

test('a partition between halves: both sides keep allocating from what they own; healed, 0 duplicates and one table', (t) => {
  const r = mulberry32(77);
  const names = Array.from({ length: 10 }, (_, i) => `n${i}`);
  const sim = new PeerSim(r, 160);
  for (const n of names) { sim.add(n, { initialPeers: names }); sim.seedsOf.set(n, names); }
  sim.run(1000);
  t.true(sim.converged());
  for (const [i, n] of names.entries()) sim.group.set(n, i < 5 ? 0 : 1);
  const before = new Map(names.map((n) => [n, [...sim.nodes.get(n)!.store.values()].reduce((a, b) => a + b, 0)]));
  sim.run(10_000, churn(sim, 0.5));
  for (const n of names) t.true([...sim.nodes.get(n)!.store.values()].reduce((a, b) => a + b, 0) > before.get(n)!, `${n} allocated while cut off`);
  for (const n of names) sim.group.set(n, 0);
  const took = settle(sim, 10_000);
  t.true(took >= 0);
  t.is(sim.doubleHeld, 0);
  t.log(`halves converged ${took} ms (simulated) after the heal`);
});

test('restarts from the persisted state keep exactly what was owned; a node retired by a majority: its blocks go to one heir, the minority cannot', (t) => {
  const r = mulberry32(5);
  const names = ['a', 'b', 'c', 'd', 'e'];
  const sim = new PeerSim(r, 40, { voteSilenceMs: 2000 });
  for (const n of names) { sim.add(n, { initialPeers: names }); sim.seedsOf.set(n, names); }
  sim.run(1000, churn(sim));
  // b restarts from its snapshot (its store, on disk, survives).
  const b = sim.nodes.get('b')!;
  const saved = b.peer.snapshot(sim.now); const store = b.store;
  b.down = true;
  sim.run(500, churn(sim));
  const b2 = sim.add('b', { initialPeers: names, saved }); b2.store = store; sim.seedsOf.set('b', names);
  t.deepEqual(b2.peer.owned(), saved.table.filter((x) => x.owner === 'b').flatMap((x) => Array.from({ length: x.count }, (_, i) => x.start + i)));
  sim.run(1000, churn(sim));
  // e dies; d is cut off with it (a minority of 2): d's proposal cannot win, a's can.
  sim.nodes.get('e')!.down = true;
  sim.group.set('d', 1);
  sim.run(2500);
  const d = sim.nodes.get('d')!; const a = sim.nodes.get('a')!;
  t.is(d.peer.proposeReclaim('e', sim.now), null, 'd may propose');
  sim.run(1000);
  t.false(d.peer.retired.has('e'), 'd alone is no majority');
  t.is(a.peer.proposeReclaim('e', sim.now), null);
  sim.run(1000);
  t.true(a.peer.retired.has('e') && sim.nodes.get('b')!.peer.retired.has('e'));
  sim.group.set('d', 0);
  t.true(settle(sim, 10_000) >= 0);
  t.is(sim.doubleHeld, 0);
  t.is(d.peer.table.ownedBy('e').length, 0);
  // e comes back from its old state, long after: it allocates nothing until it hears it was reclaimed, then nothing at all.
  const eSaved = sim.nodes.get('e')!.peer.snapshot(sim.now - 10_000); const eStore = sim.nodes.get('e')!.store;
  const e2 = sim.add('e', { initialPeers: names, saved: eSaved }); e2.store = eStore; sim.seedsOf.set('e', names);
  t.true(e2.peer.waiting);
  t.deepEqual(e2.peer.allocatable(), []);
  sim.run(500, churn(sim));
  t.true(e2.peer.isRetired);
  t.deepEqual(e2.peer.allocatable(), []);
  t.is(sim.doubleHeld, 0);
});

test('the checker itself: a donor that gives a block away without taking it out of its store is caught', (t) => {
  const sim = new PeerSim(mulberry32(9), 16);
  sim.add('s', { seed: true }); sim.add('j'); sim.seedsOf.set('j', ['s']);
  sim.donate = (n: SimNode) => { for (const d of n.peer.donations([...n.store].filter(([, u]) => u === 0).map(([b]) => b), sim.now)) n.peer.give(d.to, d.blocks); };
  sim.syncStore = (n: SimNode) => { for (const b of n.peer.owned()) if (!n.store.has(b)) n.store.set(b, 0); n.peer.setSupply([...n.store].filter(([b, u]) => u === 0 && n.peer.owned().includes(b)).length); };
  sim.run(2000);
  t.true(sim.doubleHeld > 0);
});
