import test from 'ava';
import { peersFor, type NodeInfo } from '../../lib/bgp/topology.js';

const nodes: NodeInfo[] = [
  { name: 'a', address: '198.18.0.1' }, { name: 'b', address: '198.18.0.2' }, { name: 'c', address: '198.18.0.10', asn: 64600 },
  { name: 'v6', address: '2001:db8:18::5' },
];

test('full mesh: every other node of the same family, exactly one active side per pair, ASN per node or global', (t) => {
  const a = peersFor('a', nodes, { defaults: { holdTime: 9 } });
  t.deepEqual(a.map((p) => [p.address, p.asn, p.passive, p.localAddress, p.holdTime]), [
    ['198.18.0.2', 64512, false, '198.18.0.1', 9], ['198.18.0.10', 64600, false, '198.18.0.1', 9],
  ]);
  // Each pair: one side passive, the other active.
  for (const x of ['a', 'b', 'c']) {
    for (const p of peersFor(x, nodes)) {
      const other = nodes.find((n) => n.address === p.address)!;
      const back = peersFor(other.name, nodes).find((q) => q.address === nodes.find((n) => n.name === x)!.address)!;
      t.not(p.passive, back.passive, `${x} <-> ${other.name}`);
    }
  }
  t.deepEqual(peersFor('a', nodes, { asn: 65000 }).map((p) => p.asn), [65000, 64600]);
});

test('route reflectors replace the mesh; explicit peers are added; mesh off leaves only them', (t) => {
  t.deepEqual(peersFor('a', nodes, { routeReflectors: ['c'] }).map((p) => p.address), ['198.18.0.10']);
  t.deepEqual(peersFor('c', nodes, { routeReflectors: ['c'] }).map((p) => p.address), ['198.18.0.1', '198.18.0.2']);
  const tor = { address: '198.18.0.254', asn: 65001 };
  t.deepEqual(peersFor('a', nodes, { mesh: false, peers: [tor] }).map((p) => [p.address, p.asn]), [['198.18.0.254', 65001]]);
  t.is(peersFor('a', nodes, { peers: [tor] }).length, 3);
  t.throws(() => peersFor('zz', nodes), { message: /not in the node list/ });
});
