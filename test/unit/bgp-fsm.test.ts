import test from 'ava';
import { collisionKeeps, Fsm, type DownReason, type FsmConfig, type State } from '../../lib/bgp/fsm.js';
import { emptyCapabilities, type Message, type OpenMessage } from '../../lib/bgp/messages.js';
import { BgpError } from '../../lib/bgp/messages.js';
import { FakeClock } from '../helpers/clock.js';

function config(o: Partial<FsmConfig> = {}): FsmConfig {
  const capabilities = emptyCapabilities();
  capabilities.as4 = 64512;
  capabilities.multiprotocol = [{ afi: 1, safi: 1 }, { afi: 2, safi: 1 }];
  return { localAsn: 64512, routerId: '198.18.0.1', peerAsn: 64512, holdTime: 9, connectRetryTime: 5, passive: false, capabilities, ...o };
}

function peerOpen(o: Partial<OpenMessage> = {}, as4: number | undefined = 64512): OpenMessage {
  const capabilities = emptyCapabilities();
  capabilities.as4 = as4;
  capabilities.multiprotocol = [{ afi: 1, safi: 1 }];
  return { type: 'open', version: 4, myAs: 64512, holdTime: 30, routerId: '198.18.0.2', capabilities, ...o };
}

/** An FSM with every output recorded. */
function harness(o: Partial<FsmConfig> = {}, openReceived?: (o: OpenMessage) => boolean) {
  const clock = new FakeClock();
  const log: string[] = [];
  const sent: Message[] = [];
  const downs: [DownReason, boolean][] = [];
  const states: State[] = [];
  let established = 0;
  const fsm = new Fsm(config(o), {
    send: (m) => { sent.push(m); log.push(`send ${m.type}`); },
    connect: () => log.push('connect'),
    disconnect: () => log.push('disconnect'),
    openReceived,
    established: () => { established++; },
    update: () => log.push('update'),
    down: (r, was) => downs.push([r, was]),
    stateChanged: (_f, t) => states.push(t),
  }, clock);
  return { fsm, clock, log, sent, downs, states, get established() { return established; } };
}

function toEstablished(h: ReturnType<typeof harness>, open = peerOpen()): void {
  h.fsm.handle({ type: 'start' });
  h.fsm.handle({ type: 'tcp-connected' });
  h.fsm.handle({ type: 'message', message: open });
  h.fsm.handle({ type: 'message', message: { type: 'keepalive' } });
}

test('active start: Connect, OPEN on TCP up, KEEPALIVE on their OPEN, Established on their KEEPALIVE', (t) => {
  const h = harness();
  toEstablished(h);
  t.deepEqual(h.states, ['Connect', 'OpenSent', 'OpenConfirm', 'Established']);
  t.deepEqual(h.sent.map((m) => m.type), ['open', 'keepalive']);
  const open = h.sent[0] as OpenMessage;
  t.like(open, { myAs: 64512, holdTime: 9, routerId: '198.18.0.1' });
  t.is(h.established, 1);
  t.like(h.fsm.negotiated, { holdTime: 9, keepaliveTime: 3, as4: true, families: [{ afi: 1, safi: 1 }] });
  t.is(h.fsm.direction, 'out');
});

test('passive start waits in Active and never connects', (t) => {
  const h = harness({ passive: true });
  h.fsm.handle({ type: 'start' });
  t.is(h.fsm.state, 'Active');
  h.clock.advance(60_000);
  t.false(h.log.includes('connect'));
  h.fsm.handle({ type: 'tcp-accepted' });
  t.is(h.fsm.state, 'OpenSent');
  t.is(h.fsm.direction, 'in');
});

test('connect retry: a failed connect goes Active, the retry timer connects again', (t) => {
  const h = harness();
  h.fsm.handle({ type: 'start' });
  h.fsm.handle({ type: 'tcp-failed' });
  t.is(h.fsm.state, 'Active');
  h.clock.advance(4999);
  t.is(h.log.filter((x) => x === 'connect').length, 1);
  h.clock.advance(1);
  t.is(h.fsm.state, 'Connect');
  t.is(h.log.filter((x) => x === 'connect').length, 2);
  // A connect that hangs is abandoned and retried at the next expiry.
  h.clock.advance(5000);
  t.is(h.log.filter((x) => x === 'connect').length, 3);
});

test('keepalives every hold/3; hold timer expiry sends 4/0 and goes Idle', (t) => {
  const h = harness();
  toEstablished(h);
  const keepalives = () => h.sent.filter((m) => m.type === 'keepalive').length;
  h.clock.advance(3000);
  t.is(keepalives(), 2);
  h.clock.advance(3000);
  t.is(keepalives(), 3);
  // Traffic from the peer resets the hold timer...
  h.fsm.handle({ type: 'message', message: { type: 'keepalive' } });
  h.clock.advance(8999);
  t.is(h.fsm.state, 'Established');
  // ...silence for the whole hold time ends the session.
  h.clock.advance(1);
  t.is(h.fsm.state, 'Idle');
  t.like(h.sent.at(-1), { type: 'notification', code: 4, subcode: 0 });
  t.is(h.downs.length, 1);
  t.is(h.downs[0][0].kind, 'notification-sent');
  t.true(h.downs[0][1]);
  t.is(h.clock.pending(), 0, 'no timer left running in Idle');
});

test('hold time 0 negotiated: no keepalives, no hold timer', (t) => {
  const h = harness({ holdTime: 0 });
  toEstablished(h);
  h.clock.advance(600_000);
  t.is(h.fsm.state, 'Established');
  t.is(h.sent.filter((m) => m.type === 'keepalive').length, 1);
});

test('the large hold time of OpenSent expires without an OPEN', (t) => {
  const h = harness();
  h.fsm.handle({ type: 'start' });
  h.fsm.handle({ type: 'tcp-connected' });
  h.clock.advance(239_999);
  t.is(h.fsm.state, 'OpenSent');
  h.clock.advance(1);
  t.is(h.fsm.state, 'Idle');
  t.like(h.sent.at(-1), { type: 'notification', code: 4 });
});

test('bad OPENs: wrong AS 2/2 (data the AS), hold time 2 is 2/6, our own id is 2/3', (t) => {
  const cases: [OpenMessage, number, number[]][] = [
    [peerOpen({ myAs: 64999 }, 64999), 2, [0, 0, 0xfd, 0xe7]],
    [peerOpen({ holdTime: 2 }), 6, [0, 2]],
    [peerOpen({ routerId: '198.18.0.1' }), 3, []],
  ];
  for (const [open, subcode, data] of cases) {
    const h = harness();
    h.fsm.handle({ type: 'start' });
    h.fsm.handle({ type: 'tcp-connected' });
    h.fsm.handle({ type: 'message', message: open });
    t.is(h.fsm.state, 'Idle');
    const n = h.sent.at(-1);
    t.like(n, { type: 'notification', code: 2, subcode });
    t.deepEqual([...(n as any).data], data);
    t.true(h.log.includes('disconnect'));
  }
  // A 4-byte ASN arrives as AS_TRANS with the real one in capability 65.
  const h = harness({ peerAsn: 4200000001 });
  toEstablished(h, peerOpen({ myAs: 23456 }, 4200000001));
  t.is(h.fsm.state, 'Established');
});

test('unexpected messages are FSM errors 5/1, 5/2, 5/3', (t) => {
  const a = harness();
  a.fsm.handle({ type: 'start' });
  a.fsm.handle({ type: 'tcp-connected' });
  a.fsm.handle({ type: 'message', message: { type: 'keepalive' } });
  t.like(a.sent.at(-1), { type: 'notification', code: 5, subcode: 1 });
  const b = harness();
  b.fsm.handle({ type: 'start' });
  b.fsm.handle({ type: 'tcp-connected' });
  b.fsm.handle({ type: 'message', message: peerOpen() });
  b.fsm.handle({ type: 'message', message: peerOpen() });
  t.like(b.sent.at(-1), { type: 'notification', code: 5, subcode: 2 });
  const c = harness();
  toEstablished(c);
  c.fsm.handle({ type: 'message', message: peerOpen() });
  t.like(c.sent.at(-1), { type: 'notification', code: 5, subcode: 3 });
  t.is(c.fsm.state, 'Idle');
});

test('NOTIFICATION received, TCP closed, codec error: each ends the session with its reason', (t) => {
  const a = harness();
  toEstablished(a);
  a.fsm.handle({ type: 'message', message: { type: 'notification', code: 6, subcode: 2, data: new Uint8Array(0) } });
  t.is(a.downs[0][0].kind, 'notification-received');
  t.is(a.sent.at(-1)!.type, 'keepalive', 'no NOTIFICATION answers a NOTIFICATION');
  const b = harness();
  toEstablished(b);
  b.fsm.handle({ type: 'tcp-closed' });
  t.deepEqual(b.downs, [[{ kind: 'tcp-closed' }, true]]);
  const c = harness();
  toEstablished(c);
  c.fsm.handle({ type: 'protocol-error', error: new BgpError(1, 1, 'bad marker') });
  t.like(c.sent.at(-1), { type: 'notification', code: 1, subcode: 1 });
});

test('updates reach the output only in Established, and reset the hold timer', (t) => {
  const h = harness();
  toEstablished(h);
  h.clock.advance(8000);
  h.fsm.handle({ type: 'message', message: { type: 'update', withdrawn: [], nlri: [], attributes: { other: [] } } });
  h.clock.advance(8000);
  t.is(h.fsm.state, 'Established');
  t.is(h.log.filter((x) => x === 'update').length, 1);
});

test('stop sends Cease/2 (or the given NOTIFICATION) and goes Idle', (t) => {
  const h = harness();
  toEstablished(h);
  h.fsm.handle({ type: 'stop' });
  t.like(h.sent.at(-1), { type: 'notification', code: 6, subcode: 2 });
  t.is(h.fsm.state, 'Idle');
  t.is(h.downs[0][0].kind, 'stopped');
  t.is(h.clock.pending(), 0);
});

test('collision: the higher BGP identifier keeps the connection it opened', (t) => {
  t.is(collisionKeeps('198.18.0.2', '198.18.0.1'), 'out');
  t.is(collisionKeeps('198.18.0.1', '198.18.0.2'), 'in');
  t.is(collisionKeeps('10.0.0.1', '9.255.255.255'), 'out'); // numeric, not text, order
  // The FSM asks on every OPEN; a loss is Cease/7.
  const h = harness({}, () => false);
  h.fsm.handle({ type: 'start' });
  h.fsm.handle({ type: 'tcp-connected' });
  h.fsm.handle({ type: 'message', message: peerOpen() });
  t.like(h.sent.at(-1), { type: 'notification', code: 6, subcode: 7 });
  t.is(h.fsm.state, 'Idle');
  // collisionLost() ends a connection that is further along.
  const g = harness();
  g.fsm.handle({ type: 'start' });
  g.fsm.handle({ type: 'tcp-connected' });
  g.fsm.handle({ type: 'message', message: peerOpen() });
  t.is(g.fsm.state, 'OpenConfirm');
  g.fsm.collisionLost();
  t.like(g.sent.at(-1), { type: 'notification', code: 6, subcode: 7 });
  t.is(g.fsm.state, 'Idle');
});
