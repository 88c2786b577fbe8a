import test from 'ava';
import { formatCIDR, formatIP, parseCIDR, parseIP, type CIDR, type IP } from '../../lib/ip/addr.js';
import { decodeMessage, encodeMessage, endOfRibMessage } from '../../lib/bgp/codec.js';
import { Framer } from '../../lib/bgp/framer.js';
import type { RouteSink } from '../../lib/bgp/kernel.js';
import { emptyAttributes, emptyCapabilities, type Message, type UpdateMessage } from '../../lib/bgp/messages.js';
import { comparePaths, type Path } from '../../lib/bgp/rib.js';
import type { PeerConfig } from '../../lib/bgp/session.js';
import { Speaker } from '../../lib/bgp/speaker.js';
import { MemoryNetwork, type Connection } from '../../lib/bgp/transport.js';
import type { Logger } from '../../lib/log.js';
import { FakeClock } from '../helpers/clock.js';

// Speakers and scripted peers over an in-memory network with a fake clock: whole sessions, no sockets.

const lines: string[] = [];
const quiet: Logger = { error: () => {}, warn: () => {}, info: (m) => { lines.push(m); }, debug: () => {}, operation: () => {} };
const flush = async (n = 30) => { for (let i = 0; i < n; i++) await new Promise((r) => setImmediate(r)); };

class Sink implements RouteSink {
  routes = new Map<string, string>();
  blackholes = new Set<string>();
  install(p: CIDR, nh: IP) { this.routes.set(formatCIDR(p), formatIP(nh)); }
  remove(p: CIDR) { this.routes.delete(formatCIDR(p)); }
  blackhole(p: CIDR, on: boolean) { if (on) this.blackholes.add(formatCIDR(p)); else this.blackholes.delete(formatCIDR(p)); }
}

function pair(net: MemoryNetwork, clock: FakeClock, o: { a?: Partial<PeerConfig>; b?: Partial<PeerConfig> } = {}) {
  const sa = new Sink();
  const sb = new Sink();
  const a = new Speaker({
    asn: 64512, routerId: '198.18.0.1', listen: [{ address: '198.18.0.1' }], transport: net.transport('198.18.0.1'), clock, sink: sa, log: quiet,
    peers: [{ address: '198.18.0.2', asn: 64512, passive: true, holdTime: 9, ...o.a }],
  });
  const b = new Speaker({
    asn: 64512, routerId: '198.18.0.2', listen: [{ address: '198.18.0.2' }], transport: net.transport('198.18.0.2'), clock, sink: sb, log: quiet,
    peers: [{ address: '198.18.0.1', asn: 64512, holdTime: 9, ...o.b }],
    nextHops: { v6: '2001:db8:18::2' },
  });
  return { a, b, sa, sb };
}

test('two speakers: Established, blocks both ways (blackhole at home, route at the other end), withdraw', async (t) => {
  const net = new MemoryNetwork();
  const clock = new FakeClock();
  const { a, b, sa, sb } = pair(net, clock);
  a.announce('10.244.1.0/26');
  b.announce('10.244.2.0/26');
  b.announce('2001:db8:244:2::/122');
  b.announce('10.244.9.7/32', { blackhole: false }); // a borrowed address: announced, no blackhole
  await a.start();
  await b.start();
  await flush();
  t.like(a.peers()[0], { state: 'Established', prefixesIn: 3, prefixesOut: 1, routerId: '198.18.0.2', families: ['ipv4', 'ipv6'] });
  t.like(b.peers()[0], { state: 'Established', prefixesIn: 1, prefixesOut: 3 });
  t.deepEqual([...sa.blackholes], ['10.244.1.0/26']);
  t.deepEqual([...sb.blackholes].sort(), ['10.244.2.0/26', '2001:db8:244:2::/122']);
  t.deepEqual(Object.fromEntries(sa.routes), { '10.244.2.0/26': '198.18.0.2', '2001:db8:244:2::/122': '2001:db8:18::2', '10.244.9.7/32': '198.18.0.2' });
  t.deepEqual(Object.fromEntries(sb.routes), { '10.244.1.0/26': '198.18.0.1' });
  const r = a.routes().learned.find((x) => x.prefix === '10.244.2.0/26')!;
  t.like(r, { best: true, stale: false, localPref: 100, asPath: [], origin: 0, peer: '198.18.0.2' });
  // Uptime counts from Established.
  clock.advance(2500);
  await flush();
  t.is(a.peers()[0].uptime, 2);
  b.withdraw('10.244.2.0/26');
  await flush();
  t.false(sa.routes.has('10.244.2.0/26'));
  t.false(sb.blackholes.has('10.244.2.0/26'));
  t.is(a.peers()[0].prefixesIn, 2);
  // Keepalives hold the session over many hold times.
  for (let i = 0; i < 10; i++) { clock.advance(3000); await flush(); }
  t.is(a.peers()[0].state, 'Established');
  b.stop();
  await flush();
  t.is(a.peers()[0].state, 'Idle', 'the idle hold time first');
  t.is(a.peers()[0].lastError, 'received NOTIFICATION 6/2');
  clock.advance(5000);
  t.is(a.peers()[0].state, 'Active');
  t.is(sa.routes.size, 0, 'an administrative stop is no graceful restart: routes go at once');
  a.stop();
});

test('only configured peers may connect', async (t) => {
  const net = new MemoryNetwork();
  const clock = new FakeClock();
  const { a } = pair(net, clock);
  await a.start();
  let closed = false;
  const tr = net.transport('198.18.0.99');
  tr.connect({ host: '198.18.0.1', port: 179 }, (_e, c) => c!.onClose(() => { closed = true; }));
  await flush();
  t.true(closed);
  t.is(a.peers()[0].state, 'Active');
  a.stop();
});

test('both sides active: the collision leaves one session, kept by the higher router id', async (t) => {
  const net = new MemoryNetwork();
  const clock = new FakeClock();
  const { a, b, sa } = pair(net, clock, { a: { passive: false } });
  b.announce('10.244.2.0/26');
  await Promise.all([a.start(), b.start()]);
  await flush(60);
  clock.advance(6000); // any side that lost and went Idle starts again; the session must still be one
  await flush(60);
  t.is(a.peers()[0].state, 'Established');
  t.is(b.peers()[0].state, 'Established');
  t.is(sa.routes.get('10.244.2.0/26'), '198.18.0.2');
  t.true(lines.some((l) => l.includes('connection collision, keeping the')), 'a collision was resolved');
  a.stop();
  b.stop();
});

/** A hand-driven peer: connects to the speaker and speaks raw messages. */
class Scripted {
  conn!: Connection;
  got: Message[] = [];
  closed = false;
  private framer = new Framer();
  static async connect(net: MemoryNetwork, from: string, to: string): Promise<Scripted> {
    const s = new Scripted();
    await new Promise<void>((res, rej) => net.transport(from).connect({ host: to, port: 179 }, (e, c) => {
      if (e) return rej(e);
      s.conn = c!;
      c!.onData((d) => { for (const m of s.framer.push(d)) s.got.push(decodeMessage(m).message); });
      c!.onClose(() => { s.closed = true; });
      res();
    }));
    return s;
  }
  send(m: Message) { this.conn.write(encodeMessage(m)); }
  open(o: { asn?: number; gr?: { time: number; forwarding: boolean } } = {}) {
    const c = emptyCapabilities();
    c.as4 = o.asn ?? 64512;
    c.multiprotocol = [{ afi: 1, safi: 1 }];
    if (o.gr) c.gracefulRestart = { restarting: true, notification: false, time: o.gr.time, families: [{ afi: 1, safi: 1, forwarding: o.gr.forwarding }] };
    this.send({ type: 'open', version: 4, myAs: o.asn ?? 64512, holdTime: 9, routerId: '198.18.0.2', capabilities: c });
    this.send({ type: 'keepalive' });
  }
  announce(prefixes: string[], nh = '198.18.0.2', extra: Partial<UpdateMessage['attributes']> = {}) {
    const a = { ...emptyAttributes(), origin: 0, asPath: [], nextHop: parseIP(nh)!, localPref: 100, ...extra };
    this.send({ type: 'update', withdrawn: [], attributes: a, nlri: prefixes.map((p) => parseCIDR(p)!) });
  }
  notifications() { return this.got.filter((m) => m.type === 'notification'); }
}

/** A lone speaker with one scripted peer (198.18.0.2) connected and its OPEN sent. */
async function oneSession(open: Parameters<Scripted['open']>[0] = {}, peer: Partial<PeerConfig> = {}) {
  const net = new MemoryNetwork();
  const clock = new FakeClock();
  const { s, sink } = lone(net, clock, peer);
  await s.start();
  const p = await Scripted.connect(net, '198.18.0.2', '198.18.0.1');
  p.open(open);
  return { net, clock, s, sink, p };
}

function lone(net: MemoryNetwork, clock: FakeClock, peer: Partial<PeerConfig> = {}) {
  const sink = new Sink();
  const s = new Speaker({
    asn: 64512, routerId: '198.18.0.1', listen: [{ address: '198.18.0.1' }], transport: net.transport('198.18.0.1'), clock, sink, log: quiet,
    peers: [{ address: '198.18.0.2', asn: 64512, passive: true, holdTime: 9, ...peer }],
  });
  return { s, sink };
}

test('a bad OPEN (wrong AS) is refused with NOTIFICATION 2/2', async (t) => {
  const { s, p } = await oneSession({ asn: 64999 });
  await flush();
  t.like(p.notifications()[0], { code: 2, subcode: 2 });
  t.true(p.closed);
  t.is(s.peers()[0].lastError, 'sent NOTIFICATION 2/2 data 0000fde7');
  s.stop();
});

test('End-of-RIB is sent after the initial table; RFC 7606 errors withdraw, the session stays', async (t) => {
  const net = new MemoryNetwork();
  const clock = new FakeClock();
  const { s, sink } = lone(net, clock);
  s.announce('10.244.1.0/26');
  await s.start();
  const p = await Scripted.connect(net, '198.18.0.2', '198.18.0.1');
  p.open();
  await flush();
  const ups = p.got.filter((m): m is UpdateMessage => m.type === 'update');
  t.deepEqual(ups.map((u) => u.nlri.map(formatCIDR)), [['10.244.1.0/26'], []]);
  t.deepEqual(ups[1], endOfRibMessage(1, 1));
  t.is(formatIP(ups[0].attributes.nextHop!), '198.18.0.1');
  t.is(ups[0].attributes.localPref, 100);
  p.announce(['10.244.2.0/26', '10.244.3.0/26']);
  await flush();
  t.is(sink.routes.size, 2);
  // The same prefix again, now without NEXT_HOP: withdrawn, not a session reset (BIRD does the same).
  const bad = { ...emptyAttributes(), origin: 0, asPath: [], localPref: 100 };
  p.send({ type: 'update', withdrawn: [], attributes: bad, nlri: [parseCIDR('10.244.2.0/26')!] });
  // A malformed attribute (ORIGIN 5) from the raw bytes.
  const raw = encodeMessage({ type: 'update', withdrawn: [], attributes: { ...emptyAttributes(), origin: 0, asPath: [], nextHop: parseIP('198.18.0.2')!, localPref: 100 }, nlri: [parseCIDR('10.244.3.0/26')!] });
  raw[26] = 5; // the ORIGIN value byte: header 19, lengths 4, then 40 01 01 <value>
  p.conn.write(raw);
  await flush();
  t.is(sink.routes.size, 0);
  t.is(s.peers()[0].state, 'Established');
  t.deepEqual(p.notifications(), []);
  // A framing error does end it: 1/1 for a bad marker.
  p.conn.write(Buffer.alloc(19));
  await flush();
  t.like(p.notifications()[0], { code: 1, subcode: 1 });
  s.stop();
});

test('IPv4 NLRI in MP_REACH is taken too; an IPv6 next hop for it (extended next hop, not offered) is not', async (t) => {
  const { s, sink, p } = await oneSession();
  await flush();
  const mp = (nh: string, prefix: string) => p.send({
    type: 'update', withdrawn: [], nlri: [],
    attributes: { ...emptyAttributes(), origin: 0, asPath: [], localPref: 100, mpReach: { afi: 1, safi: 1, nextHops: [parseIP(nh)!], nlri: [parseCIDR(prefix)!] } },
  });
  mp('198.18.0.7', '10.244.7.0/26');
  mp('2001:db8:18::7', '10.244.8.0/26');
  await flush();
  t.deepEqual(Object.fromEntries(sink.routes), { '10.244.7.0/26': '198.18.0.7' });
  s.stop();
});

test('max-prefix: one over the limit ends the session with Cease/1, the routes go', async (t) => {
  const { net, clock, s, sink, p } = await oneSession(undefined, { maxPrefix: 3 });
  await flush();
  p.announce(['10.244.1.0/26', '10.244.2.0/26', '10.244.3.0/26']);
  await flush();
  t.is(sink.routes.size, 3);
  t.deepEqual(p.notifications(), []);
  p.announce(['10.244.4.0/26']);
  await flush();
  const n = p.notifications()[0] as any;
  t.like(n, { code: 6, subcode: 1 });
  t.deepEqual([...n.data], [0, 1, 1, 0, 0, 0, 3]);
  t.is(sink.routes.size, 0);
  t.true(p.closed);
  // It stays down for the max-prefix restart time (60 s), not just the idle hold time, and refuses the peer meanwhile.
  clock.advance(30_000);
  t.is(s.peers()[0].state, 'Idle');
  const again = await Scripted.connect(net, '198.18.0.2', '198.18.0.1');
  await flush();
  t.true(again.closed);
  clock.advance(30_000);
  t.is(s.peers()[0].state, 'Active');
  s.stop();
});

test('graceful restart helper: routes stay stale over a dropped connection, re-announced ones survive End-of-RIB, the rest go', async (t) => {
  let { net, clock, s, sink, p } = await oneSession({ gr: { time: 120, forwarding: true } });
  await flush();
  p.announce(['10.244.1.0/26', '10.244.2.0/26']);
  await flush();
  p.conn.close(); // no NOTIFICATION: the peer is restarting
  await flush();
  t.not(s.peers()[0].state, 'Established');
  t.is(sink.routes.size, 2, 'kept during the restart');
  t.true(s.routes().learned.every((r) => r.stale));
  // Back at once: a passive peer does not sit out its idle hold time.
  p = await Scripted.connect(net, '198.18.0.2', '198.18.0.1');
  p.open({ gr: { time: 120, forwarding: true } });
  await flush();
  t.is(s.peers()[0].state, 'Established');
  t.is(sink.routes.size, 2, 'still kept until End-of-RIB');
  p.announce(['10.244.1.0/26']);
  p.send(endOfRibMessage(1, 1));
  await flush();
  t.deepEqual([...sink.routes.keys()], ['10.244.1.0/26']);
  t.false(s.routes().learned[0].stale);
  // Without coming back in time, the stale routes go when the restart time ends.
  p.conn.close();
  await flush();
  t.is(sink.routes.size, 1);
  clock.advance(120_000);
  await flush();
  t.is(sink.routes.size, 0);
  s.stop();
});

test('graceful restart: a peer back without the forwarding bit loses its stale routes at once', async (t) => {
  let { net, clock, s, sink, p } = await oneSession({ gr: { time: 120, forwarding: false } });
  await flush();
  p.announce(['10.244.1.0/26']);
  await flush();
  p.conn.close();
  await flush();
  t.is(sink.routes.size, 1);
  clock.advance(6000);
  p = await Scripted.connect(net, '198.18.0.2', '198.18.0.1');
  p.open({ gr: { time: 120, forwarding: false } });
  await flush();
  t.is(sink.routes.size, 0);
  s.stop();
});

test('a peer that never asked for graceful restart loses its routes with the session', async (t) => {
  const { s, sink, p } = await oneSession();
  await flush();
  p.announce(['10.244.1.0/26']);
  await flush();
  t.is(sink.routes.size, 1);
  p.conn.close();
  await flush();
  t.is(sink.routes.size, 0);
  s.stop();
});

test('route reflector client: our own ORIGINATOR_ID coming back is dropped; CLUSTER_LIST length counts', async (t) => {
  const { s, sink, p } = await oneSession();
  await flush();
  p.announce(['10.244.1.0/26'], '198.18.0.2', { originatorId: '198.18.0.1', clusterList: ['198.18.0.2'] });
  p.announce(['10.244.5.0/26'], '198.18.0.5', { originatorId: '198.18.0.5', clusterList: ['198.18.0.2'] });
  await flush();
  t.deepEqual(Object.fromEntries(sink.routes), { '10.244.5.0/26': '198.18.0.5' });
  const base = { prefix: parseCIDR('10.0.0.0/8')!, peer: 'x', peerRouterId: '1.1.1.1', ibgp: true, nextHop: parseIP('1.1.1.1')!, stale: false };
  const path = (o: Partial<Path['attributes']>, p: Partial<Path> = {}): Path => ({ ...base, ...p, attributes: { other: [], origin: 0, asPath: [], ...o } });
  t.true(comparePaths(path({ clusterList: ['1.1.1.1'] }), path({ clusterList: ['1.1.1.1', '2.2.2.2'] })) < 0);
  t.true(comparePaths(path({ localPref: 200 }), path({ localPref: 100, asPath: [] })) < 0);
  t.true(comparePaths(path({ asPath: [{ type: 2, asns: [1] }] }), path({ asPath: [{ type: 2, asns: [1, 2] }] })) < 0);
  t.true(comparePaths(path({ origin: 0 }), path({ origin: 2 })) < 0);
  t.true(comparePaths(path({ med: 5 }), path({ med: 10 })) < 0);
  t.true(comparePaths(path({}, { ibgp: false }), path({})) < 0);
  t.true(comparePaths(path({}, { peerRouterId: '1.1.1.1' }), path({}, { peerRouterId: '1.1.1.2' })) < 0);
  s.stop();
});

test('setPeers: a removed peer is told Cease/3 and its routes go; a new one starts', async (t) => {
  const { s, sink, p } = await oneSession();
  await flush();
  p.announce(['10.244.1.0/26']);
  await flush();
  s.setPeers([{ address: '198.18.0.3', asn: 64512, passive: true }]);
  await flush();
  t.like(p.notifications()[0], { code: 6, subcode: 3 });
  t.is(sink.routes.size, 0);
  t.deepEqual(s.peers().map((x) => [x.address, x.state]), [['198.18.0.3', 'Active']]);
  s.stop();
});

test('GR capability: helper only by default (no families, no N bit); with keepsForwarding our families with the F bit, and the N bit', async (t) => {
  const { PeerSession } = await import('../../lib/bgp/session.js');
  const { systemClock } = await import('../../lib/bgp/fsm.js');
  const { Rib } = await import('../../lib/bgp/rib.js');
  const { createLogger } = await import('../../lib/log.js');
  const { tcpTransport } = await import('../../lib/bgp/transport.js');
  const ctx = (keepsForwarding?: boolean) => ({
    asn: 64512, routerId: '198.18.0.11', clock: systemClock, transport: tcpTransport, rib: new Rib(), log: createLogger({ component: 't', level: 'error' }),
    restartTime: 120, keepsForwarding, localPrefixes: () => [], nextHop: () => undefined, changed: () => {},
  });
  const peer = { address: '198.18.0.12', asn: 64512 };
  const helper = new PeerSession(peer, ctx()).capabilities().gracefulRestart!;
  t.deepEqual(helper, { restarting: false, notification: false, time: 120, families: [] });
  const kept = new PeerSession({ ...peer, families: [4, 6] }, ctx(true)).capabilities().gracefulRestart!;
  t.true(kept.notification);
  t.deepEqual(kept.families, [{ afi: 1, safi: 1, forwarding: true }, { afi: 2, safi: 1, forwarding: true }]);
  t.is(new PeerSession({ ...peer, gracefulRestart: false }, ctx(true)).capabilities().gracefulRestart, undefined, 'gracefulRestart: false advertises nothing');
});

test('every FSM state change of a peer is a "transition" event (peer, from, to): up, then a Cease, then up again', async (t) => {
  const net = new MemoryNetwork();
  const clock = new FakeClock();
  const { a, b } = pair(net, clock, { b: { idleHoldTime: 1 } });
  const seen: string[] = [];
  b.on('transition', (x: { peer: string; from: string; to: string }) => seen.push(`${x.peer} ${x.from}>${x.to}`));
  await a.start();
  await b.start();
  await flush();
  t.deepEqual(seen, ['198.18.0.1 Idle>Connect', '198.18.0.1 Connect>OpenSent', '198.18.0.1 OpenSent>OpenConfirm', '198.18.0.1 OpenConfirm>Established']);
  seen.length = 0;
  // a restarts its side (the peer set changes): b gets a Cease, goes Idle, and after its idle hold connects again.
  a.setPeers([{ address: '198.18.0.2', asn: 64512, passive: true, holdTime: 10 }]);
  await flush();
  t.deepEqual(seen, ['198.18.0.1 Established>Idle']);
  clock.advance(1000);
  await flush();
  t.deepEqual(seen.slice(1), ['198.18.0.1 Idle>Connect', '198.18.0.1 Connect>OpenSent', '198.18.0.1 OpenSent>OpenConfirm', '198.18.0.1 OpenConfirm>Established']);
  a.stop();
  b.stop();
});
