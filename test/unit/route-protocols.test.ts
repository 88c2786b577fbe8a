import test from 'ava';
import * as P from '../../lib/route-protocols.js';

// Each program lists, replaces and deletes only routes under its own protocol number, so the numbers must
// differ from one another and from every number another routing daemon is known to own.
const TAKEN: Record<number, string> = {
  0: 'unspec', 1: 'redirect', 2: 'kernel', 3: 'boot', 4: 'static', 8: 'gated', 9: 'ra', 10: 'mrt', 11: 'zebra',
  12: 'bird', 13: 'dnrouted', 14: 'xorp', 15: 'ntk', 16: 'dhcp', 18: 'keepalived', 42: 'babel',
  80: 'calico', 84: 'ovn', 99: 'openr', 186: 'bgp', 187: 'isis', 188: 'ospf', 189: 'rip', 190: 'ripng',
  191: 'nhrp', 192: 'eigrp', 193: 'ldp', 194: 'sharp', 195: 'pbr', 196: 'static (frr)', 197: 'openfabric', 198: 'frr',
};

test('tether\'s route protocol numbers are distinct, fit in rtm_protocol, and collide with no known owner', (t) => {
  const ours = Object.entries(P) as [string, number][];
  t.is(ours.length, 3, 'VXLAN routes, pod routes, BGP routes');
  t.is(new Set(ours.map(([, v]) => v)).size, ours.length, 'one number per job');
  for (const [name, v] of ours) {
    t.true(Number.isInteger(v) && v > 0 && v < 256, `${name} fits in a byte`);
    t.false(v in TAKEN, `${name} = ${v} is ${TAKEN[v]}'s`);
  }
});
