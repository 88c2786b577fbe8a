import test from 'ava';
import { createHmac } from 'node:crypto';
import { open, ReplayGuard, seal } from '../../tetherd/peers/auth.js';
import { digest, PeerNode } from '../../tetherd/peers/peers.js';
import { MAC_LEN, type Frame, type StateMessage } from '../../tetherd/peers/wire.js';
import { xorshift32 } from '../helpers/random.js';

// Peer-mode datagrams from a hostile or broken sender, seeded so a failure replays. Without the key,
// every variant must be dropped as forged or malformed; with the key (a member gone wrong, or bit rot
// before signing), every variant must open to a frame or be dropped as malformed, never throw, and
// whatever opens must merge into a node without an exception or a block owned twice.

const KEY = Buffer.from('f'.repeat(32));
const config = digest(['fuzz']);
const names = ['a', 'b', 'c', 'node-4', 'n.5'];

function sample(r: () => number): StateMessage {
  const blocks = 1 + Math.floor(r() * 200);
  const table = [];
  for (let at = 0; at < blocks;) {
    const count = 1 + Math.floor(r() * Math.min(20, blocks - at));
    const owner = r() < 0.1 ? '' : names[Math.floor(r() * names.length)];
    table.push({ start: at, count, owner, version: owner ? 1 + Math.floor(r() * 9) : 0 });
    at += count;
  }
  return {
    type: 'state', config, blocks,
    members: names.slice(0, 1 + Math.floor(r() * names.length)).map((name, i) => ({
      name, version: 1 + Math.floor(r() * 50), address: i % 2 ? `198.18.0.${i + 1}` : `fd00::${i + 1}`, port: 6784, vtepMAC: r() < 0.5 ? '' : '02:00:00:00:00:0a',
      initial: r() < 0.5 ? '' : config, hasTable: r() < 0.7, left: r() < 0.1, free: Math.floor(r() * 5), wants: Math.floor(r() * 3),
      votes: r() < 0.3 ? [{ dead: names[Math.floor(r() * names.length)], heir: name }] : [],
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

test('20,000 mangled datagrams: without the key all dropped as forged or malformed; re-signed, each opens or is malformed, never a crash, and merging never breaks a node', (t) => {
  const r = xorshift32(0x7e11);
  const outcome = { opened: 0, malformed: 0, forged: 0 };
  const node = new PeerNode({ name: 'b', address: '198.18.0.2', port: 6784, vtepMAC: '', config, blocks: 64, initialPeers: [], seed: true, voteSilenceMs: 1000, reclaimAfterMs: 0, reachableMs: 500, lowWater: 2 }, 0);
  node.tick(0);
  for (let i = 0; i < 20_000; i++) {
    const f: Frame = { sender: names[Math.floor(r() * names.length)], seq: BigInt(i + 1), sentAt: 1_700_000_000_000, message: sample(r) };
    const good = seal(f, KEY);
    const body = mutate(good, r);
    const unsigned = Buffer.concat([body, good.subarray(good.length - MAC_LEN)]);
    const u = open(unsigned, KEY);
    if (u.ok && !unsigned.equals(good)) { t.fail(`case ${i}: a changed datagram passed the MAC`); continue; }
    if (!u.ok) outcome[u.drop === 'forged' ? 'forged' : 'malformed']++;
    let o;
    try { o = open(signed(body), KEY); } catch (e) { t.fail(`case ${i}: open threw ${(e as Error).message}`); continue; }
    if (!o.ok) { t.is(o.drop, 'malformed', `case ${i}`); outcome.malformed++; continue; }
    outcome.opened++;
    try {
      node.receive(o.frame.message, o.frame.sender, 1);
      node.tick(1);
    } catch (e) { t.fail(`case ${i}: receive threw ${(e as Error).message}`); }
  }
  // Whatever merged in, every block still has exactly one owner entry and versions never went down.
  t.is(node.table.owners.length, 64);
  t.true(node.table.versions.every((v) => Number.isInteger(v) && v >= 1));
  t.true(outcome.forged > 15_000 && outcome.opened > 100 && outcome.malformed > 1000, JSON.stringify(outcome));
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
