import test from 'ava';
import { parseCIDR, parseIP } from '../../lib/ip/addr.js';
import { KernelRoutes } from '../../lib/bgp/kernel.js';
import * as C from '../../lib/netlink/constants.js';
import type { Netlink } from '../../lib/netlink/handle.js';
import { encodeRoute, type Route } from '../../lib/netlink/route.js';
import { Attrs, parseMessages } from '../../lib/netlink/wire.js';

/** A Netlink stand-in recording the requests as the encoder would send them. */
function recorder(dump: Route[] = []) {
  const sent: { op: string; payload: Buffer }[] = [];
  const rec = (op: 'replace' | 'del') => (r: Route) => {
    sent.push({ op, payload: parseMessages(Buffer.from(encodeRoute(op, r).finish(1)))[0].payload });
    return true;
  };
  const nl = { routeReplace: rec('replace'), routeDel: rec('del'), routes: (family: 4 | 6) => dump.filter((r) => r.family === family) };
  return { nl: nl as unknown as Netlink, sent };
}

test('installed routes carry our protocol (245) and a gateway; blackholes are RTN_BLACKHOLE; deletes name the protocol', (t) => {
  const { nl, sent } = recorder();
  const k = new KernelRoutes(nl, { metric: 32 });
  k.install(parseCIDR('10.244.2.0/26')!, parseIP('198.18.0.2')!);
  k.blackhole(parseCIDR('10.244.1.0/26')!, true);
  k.remove(parseCIDR('10.244.2.0/26')!);
  k.blackhole(parseCIDR('10.244.1.0/26')!, false);
  t.deepEqual(sent.map((s) => [s.op, s.payload[5], s.payload[7]]), [
    ['replace', 245, C.RTN_UNICAST], ['replace', 245, C.RTN_BLACKHOLE], ['del', 245, C.RTN_UNICAST], ['del', 245, C.RTN_BLACKHOLE],
  ]);
  const a = new Attrs(sent[0].payload, 12);
  t.deepEqual([...a.get(C.RTA_GATEWAY)!], [198, 18, 0, 2]);
  t.is(a.u32(C.RTA_PRIORITY), 32);
  t.is(sent[0].payload[1], 26);
});

test('reconcile removes our protocol routes we did not install, and only those', (t) => {
  const ours = (dst: string): Route => ({ family: 4, dst: parseCIDR(dst)!, protocol: 245, table: 254, type: C.RTN_UNICAST, gateway: parseIP('198.18.0.9')! });
  const { nl, sent } = recorder([ours('10.244.2.0/26'), ours('10.244.9.0/26')]);
  const k = new KernelRoutes(nl);
  k.install(parseCIDR('10.244.2.0/26')!, parseIP('198.18.0.2')!);
  const removed = k.reconcile();
  t.is(removed.length, 1);
  t.deepEqual(sent.slice(1).map((s) => [s.op, s.payload[1], s.payload[5], [...new Attrs(s.payload, 12).get(C.RTA_DST)!]]), [['del', 26, 245, [10, 244, 9, 0]]]);
});
