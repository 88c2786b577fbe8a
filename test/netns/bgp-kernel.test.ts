import test from 'ava';
import { formatCIDR, parseCIDR, parseIP } from '../../lib/ip/addr.js';
import { KernelRoutes } from '../../lib/bgp/kernel.js';
import * as C from '../../lib/netlink/constants.js';
import { Netlink } from '../../lib/netlink/handle.js';
import { Namespaces } from '../helpers/netns.js';
import { RTPROT_TETHER_BGP } from '../../lib/route-protocols.js';

const ns = new Namespaces('tbg');
test.after.always(() => ns.cleanup());

/** A veth pair, both ends up, 198.18.0.1/24 on tbgd0: next hops in 198.18.0.0/24 are reachable through it. */
function nextHopLink(nl: Netlink) {
  const veth = nl.linkAdd({ kind: 'veth', name: 'tbgd0', up: true, peer: { name: 'tbgd1' } })!;
  nl.linkSet(nl.linkByName('tbgd1')!.index, { up: true });
  nl.addrAdd(veth.index, parseCIDR('198.18.0.1/24')!);
  return veth;
}

test('kernel routes under protocol 245: install, blackhole, reconcile and clear touch only ours', (t) => {
  Netlink.within(ns.add('k1'), (nl) => {
    const dummy = nextHopLink(nl);
    // What another daemon put there, and what a previous run of ours left behind.
    nl.routeAdd({ family: 4, dst: parseCIDR('10.244.50.0/26')!, gateway: parseIP('198.18.0.50')!, protocol: C.RTPROT_STATIC });
    nl.routeAdd({ family: 4, dst: parseCIDR('10.244.51.0/26')!, gateway: parseIP('198.18.0.51')!, protocol: RTPROT_TETHER_BGP });
    nl.routeAdd({ family: 4, dst: parseCIDR('10.244.52.0/26')!, type: C.RTN_BLACKHOLE, protocol: RTPROT_TETHER_BGP });
    const k = new KernelRoutes(nl);
    k.blackhole(parseCIDR('10.244.1.0/26')!, true);
    k.install(parseCIDR('10.244.2.0/26')!, parseIP('198.18.0.2')!);
    k.install(parseCIDR('10.244.2.0/26')!, parseIP('198.18.0.3')!); // a new best path replaces
    t.deepEqual(k.reconcile().map((r) => formatCIDR(r.dst!)).sort(), ['10.244.51.0/26', '10.244.52.0/26']);
    const table = () => Object.fromEntries(nl.routes(4).filter((r) => r.dst && r.dst.prefix === 26).map((r) => [formatCIDR(r.dst!), [r.protocol, r.type]]));
    t.deepEqual(table(), {
      '10.244.1.0/26': [RTPROT_TETHER_BGP, C.RTN_BLACKHOLE],
      '10.244.2.0/26': [RTPROT_TETHER_BGP, C.RTN_UNICAST],
      '10.244.50.0/26': [C.RTPROT_STATIC, C.RTN_UNICAST],
    });
    t.is(nl.routes(4, { protocol: RTPROT_TETHER_BGP }).find((r) => r.type === C.RTN_UNICAST)?.gateway?.bytes[3], 3);
    // A static route for the same prefix is not ours to delete.
    k.remove(parseCIDR('10.244.50.0/26')!);
    t.truthy(table()['10.244.50.0/26']);
    k.clear();
    t.deepEqual(table(), { '10.244.50.0/26': [C.RTPROT_STATIC, C.RTN_UNICAST] });
    // IPv6 too.
    nl.addrAdd(dummy.index, parseCIDR('2001:db8:18::1/64')!, { flags: C.IFA_F_NODAD });
    k.install(parseCIDR('2001:db8:244:2::/122')!, parseIP('2001:db8:18::2')!);
    k.blackhole(parseCIDR('2001:db8:244:1::/122')!, true);
    t.is(nl.routes(6, { protocol: RTPROT_TETHER_BGP }).length, 2);
    k.clear();
    t.is(nl.routes(6, { protocol: RTPROT_TETHER_BGP }).length, 0);
  });
});

test('a link going down takes our routes through it with it; repair() puts back what we installed once the next hop is reachable again, and only that', (t) => {
  Netlink.within(ns.add('k2'), (nl) => {
    const veth = nextHopLink(nl);
    const k = new KernelRoutes(nl);
    k.install(parseCIDR('10.244.2.0/26')!, parseIP('198.18.0.2')!);
    k.blackhole(parseCIDR('10.244.1.0/26')!, true);
    const ours = () => nl.routes(4, { protocol: RTPROT_TETHER_BGP }).map((r) => `${formatCIDR(r.dst!)} ${r.type === C.RTN_BLACKHOLE ? 'blackhole' : 'unicast'}`).sort();
    t.deepEqual(k.repair(), { restored: [], failed: [] }, 'nothing to repair');
    nl.linkSet(veth.index, { up: false });
    t.deepEqual(ours(), ['10.244.1.0/26 blackhole'], 'the kernel flushed the route through the downed link');
    const down = k.repair();
    t.deepEqual(down.restored, [], 'no way to the next hop while the link is down');
    t.deepEqual(down.failed.map((f) => formatCIDR(f.route.dst!)), ['10.244.2.0/26']);
    nl.linkSet(veth.index, { up: true });
    t.deepEqual(k.repair().restored.map((r) => formatCIDR(r.dst!)), ['10.244.2.0/26']);
    t.deepEqual(ours(), ['10.244.1.0/26 blackhole', '10.244.2.0/26 unicast']);
    t.is(nl.routes(4, { protocol: RTPROT_TETHER_BGP }).find((r) => r.type === C.RTN_UNICAST)?.gateway?.bytes[3], 2);
    // Someone replaced our route with another next hop: ours goes back.
    nl.routeReplace({ family: 4, dst: parseCIDR('10.244.2.0/26')!, gateway: parseIP('198.18.0.9')!, protocol: RTPROT_TETHER_BGP });
    t.is(k.repair().restored.length, 1);
    t.is(nl.routes(4, { protocol: RTPROT_TETHER_BGP }).find((r) => r.type === C.RTN_UNICAST)?.gateway?.bytes[3], 2);
    k.clear();
    t.deepEqual(k.repair(), { restored: [], failed: [] }, 'what we removed is not put back');
  });
});
