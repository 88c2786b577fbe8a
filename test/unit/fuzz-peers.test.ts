import test from 'ava';
import { createHmac } from 'node:crypto';
import { open, ReplayGuard, seal } from '../../tetherd/peers/auth.js';
import { digest, PeerNode } from '../../tetherd/peers/peers.js';
import { Table } from '../../tetherd/peers/table.js';
import { MAC_LEN, type Frame, type StateMessage } from '../../tetherd/peers/wire.js';
import { xorshift32 } from '../helpers/random.js';

// Peer-mode datagrams from a hostile or broken sender, seeded so a failure replays. Without the key,
// every variant must be dropped as forged or malformed; with the key (a member gone wrong, or bit rot
// before signing), every variant must open to a frame or be dropped as malformed, never throw, and
// whatever opens must go through the node's merge, votes and election keeping its invariants: versions
// never go down, a block is owned iff its version is above 0, a node the election retires owns nothing
// afterwards (its heir has its blocks), the table round-trips through its runs. The samples are of the
// node's own pool most of the time, so most of what opens reaches that code (counted, and required).

const KEY = Buffer.from('f'.repeat(32));
const config = digest(['fuzz']);
const names = ['a', 'b', 'c', 'node-4', 'n.5'];

const BLOCKS = 64;

/** A random state; versions above vmin (raised as the run goes on, so later tables still win merges). */
function sample(r: () => number, vmin = 0): StateMessage {
  // Another pool size now and then: refused before any merge (as another network's would be).
  const blocks = r() < 0.9 ? BLOCKS : 1 + Math.floor(r() * 200);
  const table = [];
  for (let at = 0; at < blocks;) {
    const count = 1 + Math.floor(r() * Math.min(20, blocks - at));
    const owner = r() < 0.1 ? '' : names[Math.floor(r() * names.length)];
    table.push({ start: at, count, owner, version: owner ? 1 + vmin + Math.floor(r() * 10) : 0 });
    at += count;
  }
  return {
    type: 'state', config, blocks,
    members: names.slice(0, 1 + Math.floor(r() * names.length)).map((name, i) => ({
      name, version: 1 + vmin + Math.floor(r() * 50), address: i % 2 ? `198.18.0.${i + 1}` : `fd00::${i + 1}`, port: 6784, vtepMAC: r() < 0.5 ? '' : '02:00:00:00:00:0a',
      initial: r() < 0.5 ? '' : config, hasTable: r() < 0.7, left: r() < 0.1, free: Math.floor(r() * 5), wants: Math.floor(r() * 3),
      // Votes name any member as heir, b (the node under test) often, so elections are won and lost.
      votes: r() < 0.6 ? [{ dead: names[Math.floor(r() * names.length)], heir: r() < 0.7 ? 'b' : names[Math.floor(r() * names.length)] }] : [],
    })),
    retired: r() < 0.2 ? [names[4]] : [],
    table,
  };
}

function mutate(src: Buffer, r: () => number): Buffer {
  let b = Buffer.from(src.subarray(0, src.length - MAC_LEN));
  const at = () => Math.floor(r() * b.length);
  switch (Math.floor(r() * 6)) {
    case 0: for (let i = 0, n = 1 + Math.floor(r() * 4); i < n; i++) b[at()] = Math.floor(r() * 256); break;
    case 1: b = b.subarray(0, Math.floor(r() * b.length)); break;
    case 2: { const i = at(); if (i + 2 <= b.length) b.writeUInt16BE(Math.floor(r() * 65536), i); break; } // a count or a length
    case 3: { const i = at(); if (i + 4 <= b.length) b.writeUInt32BE(Math.floor(r() * 2 ** 32), i); break; } // a start, a version
    case 4: b = Buffer.concat([b, Buffer.from(Array.from({ length: 1 + Math.floor(r() * 40) }, () => Math.floor(r() * 256)))]); break;
    default: b = Buffer.concat([b.subarray(0, 30), Buffer.from(Array.from({ length: Math.floor(r() * 200) }, () => Math.floor(r() * 256)))]);
  }
  return b;
}

const signed = (body: Buffer) => Buffer.concat([body, createHmac('sha256', KEY).update(body).digest()]);

test('20,000 mangled datagrams: without the key all dropped as forged or malformed; re-signed, each opens or is malformed, never a crash; what opens goes through merge, votes and election keeping the invariants', (t) => {
  const r = xorshift32(0x7e11);
  const outcome = { opened: 0, malformed: 0, forged: 0, otherPool: 0, merged: 0, votesCast: 0, elected: 0 };
  const fresh = (now: number) => { const n = new PeerNode({ name: 'b', address: '198.18.0.2', port: 6784, vtepMAC: '', config, blocks: BLOCKS, initialPeers: [], seed: true, voteSilenceMs: 1000, reclaimAfterMs: 0, reachableMs: 500, lowWater: 2 }, now); n.tick(now); return n; };
  let node = fresh(0);
  const broken: string[] = [];
  const check = (i: number, what: string, ok: boolean) => { if (!ok && broken.length < 20) broken.push(`case ${i}: ${what}`); };
  for (let i = 0; i < 20_000; i++) {
    const now = i * 10; // silence builds up for members not heard lately, so votes are cast
    // A fresh node every 500 datagrams: a mangled version near 2^32 would otherwise win every later merge.
    if (i % 500 === 0) node = fresh(now);
    // Mostly a and c speak: the others fall silent long enough to be voted on.
    const f: Frame = { sender: r() < 0.9 ? (r() < 0.5 ? 'a' : 'c') : names[Math.floor(r() * names.length)], seq: BigInt(i + 1), sentAt: 1_700_000_000_000, message: sample(r, Math.floor((i % 500) / 3)) };
    const good = seal(f, KEY);
    // One in four goes in untouched (a member gone wrong, not bit rot): well-formed, and it reaches the merge.
    const body = r() < 0.25 ? good.subarray(0, good.length - MAC_LEN) : mutate(good, r);
    const unsigned = Buffer.concat([body, good.subarray(good.length - MAC_LEN)]);
    const u = open(unsigned, KEY);
    if (u.ok && !unsigned.equals(good)) { t.fail(`case ${i}: a changed datagram passed the MAC`); continue; }
    if (!u.ok) outcome[u.drop === 'forged' ? 'forged' : 'malformed']++;
    let o;
    try { o = open(signed(body), KEY); } catch (e) { t.fail(`case ${i}: open threw ${(e as Error).message}`); continue; }
    if (!o.ok) { t.is(o.drop, 'malformed', `case ${i}`); outcome.malformed++; continue; }
    outcome.opened++;
    const versions = [...node.table.versions];
    const votes = JSON.stringify(node.self.votes);
    // Now and then the operator asks b to reclaim someone: b's own vote for itself as heir.
    if (i % 200 === 0) node.proposeReclaim(names[Math.floor(r() * names.length)], now);
    try {
      const got = node.receive(o.frame.message, o.frame.sender, now);
      if (got.rejected) { outcome.otherPool++; continue; }
      if (node.table.versions.some((v, k) => v !== versions[k])) outcome.merged++;
      check(i, 'a version went down in the merge', node.table.versions.every((v, k) => v >= versions[k]));
      const retired = new Set(node.retired);
      const before = [...node.table.owners];
      node.tick(now);
      if (JSON.stringify(node.self.votes) !== votes) outcome.votesCast++;
      for (const dead of node.retired) {
        if (retired.has(dead)) continue;
        outcome.elected++;
        check(i, `${dead}, retired by the election, still owns blocks`, node.table.ownedBy(dead).length === 0);
        check(i, `b did not inherit ${dead}'s blocks`, before.every((x, k) => x !== dead || node.table.owners[k] === 'b'));
      }
    } catch (e) { t.fail(`case ${i}: receive or tick threw ${(e as Error).message}`); continue; }
    check(i, 'a block owned at version 0, or unowned above it', node.table.owners.every((x, k) => (x === '') === (node.table.versions[k] === 0) && Number.isInteger(node.table.versions[k])));
    check(i, 'the table does not round-trip through its runs', Table.fromRuns(BLOCKS, node.table.runs()).equals(node.table));
  }
  t.deepEqual(broken, []);
  // The fuzz reached what it is for: thousands of merges that changed the table, votes, elections won.
  t.true(outcome.forged > 12_000 && outcome.opened > 5000 && outcome.malformed > 1000 && outcome.otherPool > 100, JSON.stringify(outcome));
  t.true(outcome.merged > 2000 && outcome.votesCast > 10 && outcome.elected > 5, JSON.stringify(outcome));
  t.log(outcome);
});

test('replayed captures: the same datagram twice, or an old one after a newer, counts as replayed; one from before the window as stale', (t) => {
  const r = xorshift32(42);
  const g = new ReplayGuard(30_000);
  const now = 1_700_000_000_000;
  const send = (seq: bigint, sentAt: number) => { const o = open(seal({ sender: 'a', seq, sentAt, message: sample(r) }, KEY), KEY); return o.ok ? g.check(o.frame, now) : o; };
  t.true(send(5n, now).ok);
  t.like(send(5n, now), { ok: false, drop: 'replayed' });
  t.like(send(4n, now), { ok: false, drop: 'replayed' });
  t.like(send(6n, now - 60_000), { ok: false, drop: 'stale' });
});
