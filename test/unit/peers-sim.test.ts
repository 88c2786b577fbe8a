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
  const saved = b.peer.snapshot(sim.now);
  b.down = true;
  sim.run(500, churn(sim));
  const b2 = sim.add('b', { initialPeers: names, saved }); b2.store = b.store; b2.closed = b.closed; sim.seedsOf.set('b', names);
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
  // e comes back from its old state, long after, its store still holding its pods' addresses: it
  // allocates nothing until it hears it was reclaimed, then nothing at all; its pods' blocks stay, closed.
  const e2 = comeBack(sim, 'e', names);
  t.true(e2.peer.waiting);
  t.deepEqual(e2.peer.allocatable(), []);
  t.true([...e2.store.values()].some((u) => u > 0), 'e\'s store holds addresses of its pods');
  sim.run(500, churn(sim, 0.6));
  t.true(e2.peer.isRetired);
  t.deepEqual(e2.peer.allocatable(), []);
  t.false(sim.allocate(e2), 'e allocates nothing');
  t.true([...e2.store.keys()].every((b) => e2.closed.has(b)), 'every block left in e\'s store is closed');
  t.is(sim.doubleHeld, 0);
});

/** A node that was down comes back from the state it saved 10 s before now, with its store as it was. */
function comeBack(sim: PeerSim, name: string, names: string[]): SimNode {
  const old = sim.nodes.get(name)!;
  const n = sim.add(name, { initialPeers: names, saved: old.peer.snapshot(sim.now - 10_000) });
  n.store = old.store; n.closed = old.closed; sim.seedsOf.set(name, names);
  return n;
}

/** e, holding addresses, dies and is reclaimed by a; then it comes back and everyone allocates. */
function reclaimedComesBack(sim: PeerSim): SimNode {
  const names = ['a', 'b', 'c', 'd', 'e'];
  for (const n of names) { sim.add(n, { initialPeers: names }); sim.seedsOf.set(n, names); }
  sim.run(1000, churn(sim, 0.6));
  sim.nodes.get('e')!.down = true;
  sim.run(2500);
  sim.nodes.get('a')!.peer.proposeReclaim('e', sim.now);
  sim.run(1000);
  const e = comeBack(sim, 'e', names);
  sim.run(2000, churn(sim, 0.6));
  return e;
}

test('a reclaimed node back from a restart, or from behind a partition, gives no address in a block its heir uses', (t) => {
  for (let seed = 1; seed <= 8; seed++) {
    const sim = new PeerSim(mulberry32(300 + seed), 40, { voteSilenceMs: 2000 });
    const e = reclaimedComesBack(sim);
    t.true(e.peer.isRetired, `seed ${seed}: e learned it was reclaimed`);
    t.true(sim.nodes.get('a')!.peer.retired.has('e') && sim.nodes.get('a')!.peer.table.ownedBy('e').length === 0, `seed ${seed}: e's blocks went to its heir`);
    t.is(sim.doubleHeld, 0, `seed ${seed}: no block open in two stores`);
  }
  // Cut off (running, not restarted) past the vote silence: a minority node is reclaimed while it still
  // allocates (the documented limit); once it hears again, it closes those blocks within one round.
  const sim = new PeerSim(mulberry32(400), 40, { voteSilenceMs: 2000 });
  const names = ['a', 'b', 'c', 'd', 'e'];
  for (const n of names) { sim.add(n, { initialPeers: names }); sim.seedsOf.set(n, names); }
  sim.run(1000, churn(sim, 0.6));
  sim.group.set('e', 1);
  sim.run(2500, churn(sim, 0.6));
  sim.nodes.get('a')!.peer.proposeReclaim('e', sim.now);
  sim.run(1000, churn(sim, 0.6));
  t.true(sim.nodes.get('a')!.peer.retired.has('e'));
  sim.group.set('e', 0);
  sim.run(500, churn(sim, 0.6));
  const e = sim.nodes.get('e')!;
  t.true(e.peer.isRetired, 'e heard it was reclaimed');
  sim.doubleHeld = 0;
  sim.run(3000, churn(sim, 0.6));
  t.is(sim.doubleHeld, 0, 'after hearing, no block open in two stores');
  t.false(sim.allocate(e));
});

test('the checker itself: a store sync that leaves a reclaimed block open while pods hold addresses there is caught', (t) => {
  const sim = new PeerSim(mulberry32(301), 40, { voteSilenceMs: 2000 });
  // The store sync as it was before closed blocks: a block no longer owned stays as it is while in use.
  sim.syncStore = (n: SimNode) => {
    const owned = new Set(n.peer.waiting ? [] : n.peer.owned());
    for (const b of owned) if (!n.store.has(b)) n.store.set(b, 0);
    for (const [b, used] of n.store) if (!owned.has(b) && used === 0) n.store.delete(b);
    if (!n.peer.waiting) n.peer.setSupply(sim.emptyOwned(n).length);
  };
  reclaimedComesBack(sim);
  t.true(sim.doubleHeld > 0);
});

test('the checker itself: a donor that gives a block away without taking it out of its store is caught', (t) => {
  const sim = new PeerSim(mulberry32(9), 16);
  sim.add('s', { seed: true }); sim.add('j'); sim.seedsOf.set('j', ['s']);
  sim.donate = (n: SimNode) => { for (const d of n.peer.donations([...n.store].filter(([, u]) => u === 0).map(([b]) => b), sim.now)) n.peer.give(d.to, d.blocks); };
  sim.syncStore = (n: SimNode) => { for (const b of n.peer.owned()) if (!n.store.has(b)) n.store.set(b, 0); n.peer.setSupply([...n.store].filter(([b, u]) => u === 0 && n.peer.owned().includes(b)).length); };
  sim.run(2000);
  t.true(sim.doubleHeld > 0);
});
