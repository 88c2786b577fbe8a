import test from 'ava';
import { formatCIDR, parseCIDR, parseIP } from '../../lib/ip/addr.js';
import { KernelRoutes } from '../../lib/bgp/kernel.js';
import * as C from '../../lib/netlink/constants.js';
import { Netlink } from '../../lib/netlink/handle.js';
import { Namespaces } from '../helpers/netns.js';

const ns = new Namespaces('tbg');
test.after.always(() => ns.cleanup());

test('kernel routes under protocol 245: install, blackhole, reconcile and clear touch only ours', (t) => {
  const nl = Netlink.at(ns.add('k1'));
  try {
    const dummy = nl.linkAdd({ kind: 'veth', name: 'tbgd0', up: true, peer: { name: 'tbgd1' } })!;
    nl.linkSet(nl.linkByName('tbgd1')!.index, { up: true });
    nl.addrAdd(dummy.index, parseCIDR('198.18.0.1/24')!);
    // What another daemon put there, and what a previous run of ours left behind.
    nl.routeAdd({ family: 4, dst: parseCIDR('10.244.50.0/26')!, gateway: parseIP('198.18.0.50')!, protocol: C.RTPROT_STATIC });
    nl.routeAdd({ family: 4, dst: parseCIDR('10.244.51.0/26')!, gateway: parseIP('198.18.0.51')!, protocol: C.RTPROT_TETHER_BGP });
    nl.routeAdd({ family: 4, dst: parseCIDR('10.244.52.0/26')!, type: C.RTN_BLACKHOLE, protocol: C.RTPROT_TETHER_BGP });
    const k = new KernelRoutes(nl);
    k.blackhole(parseCIDR('10.244.1.0/26')!, true);
    k.install(parseCIDR('10.244.2.0/26')!, parseIP('198.18.0.2')!);
    k.install(parseCIDR('10.244.2.0/26')!, parseIP('198.18.0.3')!); // a new best path replaces
    t.deepEqual(k.reconcile().map((r) => formatCIDR(r.dst!)).sort(), ['10.244.51.0/26', '10.244.52.0/26']);
    const table = () => Object.fromEntries(nl.routes(4).filter((r) => r.dst && r.dst.prefix === 26).map((r) => [formatCIDR(r.dst!), [r.protocol, r.type]]));
    t.deepEqual(table(), {
      '10.244.1.0/26': [C.RTPROT_TETHER_BGP, C.RTN_BLACKHOLE],
      '10.244.2.0/26': [C.RTPROT_TETHER_BGP, C.RTN_UNICAST],
      '10.244.50.0/26': [C.RTPROT_STATIC, C.RTN_UNICAST],
    });
    t.is(nl.routes(4, { protocol: C.RTPROT_TETHER_BGP }).find((r) => r.type === C.RTN_UNICAST)?.gateway?.bytes[3], 3);
    // A static route for the same prefix is not ours to delete.
    k.remove(parseCIDR('10.244.50.0/26')!);
    t.truthy(table()['10.244.50.0/26']);
    k.clear();
    t.deepEqual(table(), { '10.244.50.0/26': [C.RTPROT_STATIC, C.RTN_UNICAST] });
    // IPv6 too.
    nl.addrAdd(dummy.index, parseCIDR('2001:db8:18::1/64')!, { flags: C.IFA_F_NODAD });
    k.install(parseCIDR('2001:db8:244:2::/122')!, parseIP('2001:db8:18::2')!);
    k.blackhole(parseCIDR('2001:db8:244:1::/122')!, true);
    t.is(nl.routes(6, { protocol: C.RTPROT_TETHER_BGP }).length, 2);
    k.clear();
    t.is(nl.routes(6, { protocol: C.RTPROT_TETHER_BGP }).length, 0);
  } finally {
    nl.close();
  }
});
