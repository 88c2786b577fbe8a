import test from 'ava';
import { formatCIDR, parseCIDR, parseIP } from '../../lib/ip/addr.js';
import { parseMAC } from '../../lib/ip/mac.js';
import * as C from '../../lib/netlink/constants.js';
import { encodeNeigh } from '../../lib/netlink/neigh.js';
import { encodeRoute } from '../../lib/netlink/route.js';
import { CTRL_ATTR_FAMILY_NAME, CTRL_CMD_GETFAMILY, GENL_ID_CTRL, encodeGetFamily } from '../../lib/netlink/genl.js';
import { ETHTOOL_A_FEATURES_HEADER, ETHTOOL_A_FEATURES_WANTED, ETHTOOL_MSG_FEATURES_SET, encodeFeaturesSet } from '../../lib/netlink/ethtool.js';
import { AgentConfigError, parseAgentConfig } from '../../tetherd/config.js';
import { stableMAC } from '../../tetherd/agent.js';
import { deviceMismatch, type DeviceSpec } from '../../tetherd/device.js';
import { describeOp, programmingFor, transition, type LocalView } from '../../tetherd/plan.js';
import { candidates, chooseSubnet, parseRecord, subnetFromKey, subnetKey, type Peer } from '../../tetherd/subnets.js';
import { bridgeConfig, parseVxlanConf } from '../../plugins/vxlan/delegate.js';
import type { NodeState } from '../../lib/node-state.js';
import type { Link } from '../../lib/netlink/link.js';

const pool = parseCIDR('10.244.0.0/16')!;
const peer = (node: string, subnet: string, ip = '198.18.0.12', mac = '0e:00:00:00:00:02'): Peer => ({
  node, subnet: parseCIDR(subnet)!, underlayIP: ip, vtepMAC: mac, vni: 1, backend: 'vxlan',
});
const local: LocalView = { underlay: parseCIDR('198.18.0.11/24')!, directRouting: false };

test('subnet keys round-trip; candidates skip the pool\'s first subnet', (t) => {
  t.is(subnetKey(parseCIDR('10.244.3.0/24')!), 'subnets/10.244.3.0-24');
  t.is(formatCIDR(subnetFromKey('subnets/10.244.3.0-24')!), '10.244.3.0/24');
  t.is(subnetFromKey('subnets/garbage'), null);
  const all = [...candidates(pool, 24)].map(formatCIDR);
  t.is(all.length, 255);
  t.is(all[0], '10.244.1.0/24');
  t.is(all[254], '10.244.255.0/24');
  t.is(parseRecord('subnets/10.244.1.0-24', '{not json'), null);
  t.is(parseRecord('subnets/10.244.1.0-24', JSON.stringify({ node: 'a', underlayIP: '1.2.3.4', vtepMAC: '0e:00:00:00:00:01', vni: 1, backend: 'vxlan' }))!.node, 'a');
});

test('chooseSubnet: the store\'s own subnet first, then the state file\'s if still free, else the first free one', (t) => {
  const taken = [peer('a', '10.244.1.0/24'), peer('b', '10.244.2.0/24')];
  t.deepEqual(chooseSubnet(taken, 'b', pool, 24), { subnet: parseCIDR('10.244.2.0/24')!, reclaimed: 'store' });
  t.deepEqual(chooseSubnet(taken, 'c', pool, 24, parseCIDR('10.244.7.0/24')!), { subnet: parseCIDR('10.244.7.0/24')!, reclaimed: 'state' });
  t.deepEqual(chooseSubnet(taken, 'c', pool, 24, parseCIDR('10.244.1.0/24')!), { subnet: parseCIDR('10.244.3.0/24')!, reclaimed: 'new' }, 'a previous subnet someone else took is not reclaimed');
  t.deepEqual(chooseSubnet(taken, 'c', pool, 24, parseCIDR('10.99.0.0/24')!)!.reclaimed, 'new', 'a previous subnet outside the pool is ignored');
  const small = parseCIDR('10.9.0.0/23')!; // two /24s, the first skipped: room for one node
  t.truthy(chooseSubnet([], 'x', small, 24));
  t.is(chooseSubnet([peer('y', '10.9.1.0/24')], 'x', small, 24), null, 'a full pool');
});

test('programmingFor: VXLAN triple by default; a plain route with directRouting when the peer shares our segment', (t) => {
  const p = programmingFor(peer('b', '10.244.2.0/24'), local)!;
  t.is(p.kind, 'vxlan');
  t.deepEqual(transition(undefined, p).map(describeOp), [
    'neigh-set 10.244.2.0 lladdr 0e:00:00:00:00:02',
    'fdb-set 0e:00:00:00:00:02 dst 198.18.0.12',
    'route 10.244.2.0/24 via 10.244.2.0 onlink',
  ], 'the route is added last');
  const direct = programmingFor(peer('b', '10.244.2.0/24'), { ...local, directRouting: true })!;
  t.deepEqual(transition(undefined, direct).map(describeOp), ['route 10.244.2.0/24 via 198.18.0.12 (direct)']);
  const far = programmingFor(peer('c', '10.244.3.0/24', '198.19.5.5'), { ...local, directRouting: true })!;
  t.is(far.kind, 'vxlan', 'a peer beyond our segment stays on VXLAN');
  const v6 = programmingFor(peer('d', '10.244.4.0/24', '2001:db8:18::12'), { underlay: parseCIDR('2001:db8:18::11/64')!, directRouting: true })!;
  t.is(v6.kind, 'vxlan', 'over an IPv6 underlay an IPv4 route has no next hop: VXLAN');
});

test('transition: nothing when unchanged; a changed MAC or address removes the stale entries before adding the new ones; leaving removes all three', (t) => {
  const before = programmingFor(peer('b', '10.244.2.0/24'), local)!;
  t.deepEqual(transition(before, programmingFor(peer('b', '10.244.2.0/24'), local)!), []);
  const moved = programmingFor(peer('b', '10.244.2.0/24', '198.18.0.99', '0e:00:00:00:00:99'), local)!;
  t.deepEqual(transition(before, moved).map(describeOp), [
    'route-del 10.244.2.0/24',
    'neigh-del 10.244.2.0 lladdr 0e:00:00:00:00:02',
    'fdb-del 0e:00:00:00:00:02 dst 198.18.0.12',
    'neigh-set 10.244.2.0 lladdr 0e:00:00:00:00:99',
    'fdb-set 0e:00:00:00:00:99 dst 198.18.0.99',
    'route 10.244.2.0/24 via 10.244.2.0 onlink',
  ]);
  t.deepEqual(transition(before, undefined).map((o) => o.op), ['route-del', 'neigh-del', 'fdb-del']);
});

test('stableMAC: the same for the same node and VNI, unicast and locally administered, different per node', (t) => {
  const a = stableMAC('node-a', 1);
  t.deepEqual(a, stableMAC('node-a', 1));
  t.notDeepEqual(a, stableMAC('node-b', 1));
  t.notDeepEqual(a, stableMAC('node-a', 2));
  t.is(a[0] & 1, 0, 'unicast');
  t.is(a[0] & 2, 2, 'locally administered');
});

test('FDB and route messages tetherd sends: NTF_SELF + NDA_DST + permanent, replace; onlink route with our protocol', (t) => {
  const w = encodeNeigh('replace', { family: C.AF_BRIDGE, index: 7, ip: parseIP('198.18.0.12')!, mac: parseMAC('0e:00:00:00:00:02')!, state: C.NUD_PERMANENT, flags: C.NTF_SELF });
  const b = w.finish(1);
  t.is(b.readUInt16LE(4), C.RTM_NEWNEIGH);
  t.is(b.readUInt16LE(6), C.NLM_F_REQUEST | C.NLM_F_ACK | C.NLM_F_CREATE | C.NLM_F_REPLACE);
  // ndmsg: family, pad x3, ifindex, state, flags, type
  t.deepEqual([...b.subarray(16, 28)], [C.AF_BRIDGE, 0, 0, 0, 7, 0, 0, 0, C.NUD_PERMANENT, 0, C.NTF_SELF, 0]);
  // NDA_DST (len 8, type 1, 198.18.0.12), NDA_LLADDR (len 10, type 2, MAC, 2 bytes padding)
  t.deepEqual([...b.subarray(28, 36)], [8, 0, C.NDA_DST, 0, 198, 18, 0, 12]);
  t.deepEqual([...b.subarray(36, 48)], [10, 0, C.NDA_LLADDR, 0, 0x0e, 0, 0, 0, 0, 2, 0, 0]);
  const r = encodeRoute('replace', { family: 4, dst: parseCIDR('10.244.2.0/24')!, gateway: parseIP('10.244.2.0')!, oif: 9, onlink: true, protocol: 199, scope: C.RT_SCOPE_UNIVERSE }).finish(1);
  t.deepEqual([...r.subarray(16, 28)], [C.AF_INET, 24, 0, 0, C.RT_TABLE_MAIN, 199, C.RT_SCOPE_UNIVERSE, C.RTN_UNICAST, C.RTNH_F_ONLINK, 0, 0, 0]);
});

const spec: DeviceSpec = {
  name: 'tether.1', vni: 1, port: 4789, local: parseIP('198.18.0.11')!, underlayIndex: 2, mtu: 1450,
  mac: parseMAC('0e:00:00:00:00:01')!, address: parseCIDR('10.244.1.0/32')!, pool, txChecksumOffload: true,
};
const link = (vxlan: Partial<NonNullable<Link['vxlan']>>, kind = 'vxlan'): Link => ({
  index: 5, name: 'tether.1', kind, mtu: 1450, mac: '0e:00:00:00:00:01', flags: 0, up: true, operState: 'up',
  vxlan: { vni: 1, port: 4789, local: parseIP('198.18.0.11')!, dev: 2, learning: false, ...vxlan },
});

test('deviceMismatch: a device whose VNI, port, local address, underlay or learning differ is replaced', (t) => {
  t.is(deviceMismatch(link({}), spec), null);
  t.regex(deviceMismatch(link({ vni: 2 }), spec)!, /VNI 2/);
  t.regex(deviceMismatch(link({ port: 8472 }), spec)!, /port 8472/);
  t.regex(deviceMismatch(link({ local: parseIP('198.18.0.99')! }), spec)!, /local address/);
  t.regex(deviceMismatch(link({ dev: 3 }), spec)!, /underlay device/);
  t.regex(deviceMismatch(link({ learning: true }), spec)!, /learning/);
  t.regex(deviceMismatch(link({}, 'bridge'), spec)!, /bridge/);
});

test('tetherd config: defaults (4789, /24, MTU from the underlay) and clear errors', (t) => {
  const c = parseAgentConfig({ pool: '10.244.0.0/16', nodeName: 'n1', etcd: { endpoints: ['unix:///run/etcd.sock'] } });
  t.is(c.port, 4789);
  t.is(c.subnetLen, 24);
  t.is(c.device, 'tether.1');
  t.is(c.mtu, undefined);
  t.true(c.txChecksumOffload);
  t.false(c.directRouting);
  t.is(parseAgentConfig({ pool: '10.244.0.0/16', nodeName: 'n1', port: 8472, vni: 7, etcd: { endpoints: ['http://127.0.0.1:2379'] } }).device, 'tether.7');
  t.is(c.underlayFamily, 4);
  t.is(parseAgentConfig({ pool: '10.244.0.0/16', nodeName: 'n1', underlayIP: '2001:db8::1', etcd: { endpoints: ['http://x:1'] } }).underlayFamily, 6);
  const bad = (o: object, re: RegExp) => t.throws(() => parseAgentConfig(o), { instanceOf: AgentConfigError, message: re });
  bad({ pool: '10.244.0.1/16', etcd: { endpoints: ['http://x:1'] } }, /"pool" has host bits set/);
  bad({ pool: '10.244.0.0/16' }, /"etcd" is required/);
  bad({ pool: '10.244.0.0/16', etcd: { endpoints: ['ftp://x'] } }, /endpoints/);
  bad({ pool: '10.244.0.0/16', etcd: { endpoints: ['http://x:1'] }, subnetLen: 16 }, /"subnetLen" must be an integer from 17 to 30/);
  bad({ pool: '10.244.0.0/16', etcd: { endpoints: ['http://x:1'] }, port: 0 }, /"port"/);
  bad({ pool: '10.244.0.0/16', etcd: { endpoints: ['http://x:1'] }, underlayFamily: 5 }, /"underlayFamily" must be 4 or 6/);
  bad({ pool: '10.244.0.0/16', etcd: { endpoints: ['http://x:1'] }, device: 'a-name-far-too-long' }, /"device"/);
});

test('tether-vxlan derives tether-bridge\'s config: node subnet as the one range, overlay MTU, gateway, route to the pool', (t) => {
  const s: NodeState = { node: 'n2', network: 'lab', pool: '10.244.0.0/16', subnet: '10.244.2.0/24', mtu: 1450, underlayIP: '198.18.0.12', vtepMAC: '0e:00:00:00:00:02', vni: 1, device: 'tether.1', updated: '' };
  const raw = { cniVersion: '1.0.0', name: 'overlay', type: 'tether-vxlan', stateFile: '/run/x.json', delegate: { isDefaultGateway: true, hairpinMode: true }, ipam: { dataDir: '/tmp/ipam' } };
  const c = parseVxlanConf(raw as any);
  const b = bridgeConfig(c, raw, s) as any;
  t.is(b.type, 'tether-bridge');
  t.is(b.mtu, 1450);
  t.true(b.isGateway);
  t.true(b.isDefaultGateway);
  t.true(b.hairpinMode);
  t.is(b.name, 'overlay');
  t.false('stateFile' in b);
  t.deepEqual(b.ipam.ranges, [[{ subnet: '10.244.2.0/24' }]]);
  t.deepEqual(b.ipam.routes, [{ dst: '10.244.0.0/16' }]);
  t.is(b.ipam.type, 'tether-ipam');
  t.is(b.ipam.nodeName, 'n2');
  t.is(b.ipam.dataDir, '/tmp/ipam');
  t.throws(() => parseVxlanConf({ ...raw, ipam: { ranges: [] } } as any), { message: /"ipam.ranges" is set by tether-vxlan/ });
  t.throws(() => parseVxlanConf({ ...raw, delegate: { type: 'bridge' } } as any), { message: /"delegate.type"/ });
  t.throws(() => parseVxlanConf({ ...raw, stateFile: 'relative' } as any), { message: /"stateFile" must be an absolute path/ });
});

test('ethtool over generic netlink: GETFAMILY "ethtool", then FEATURES_SET with a named bit and no VALUE flag (off)', (t) => {
  const fam = encodeGetFamily('ethtool').finish(1);
  t.is(fam.readUInt16LE(4), GENL_ID_CTRL);
  t.deepEqual([...fam.subarray(16, 20)], [CTRL_CMD_GETFAMILY, 1, 0, 0]);
  t.deepEqual([...fam.subarray(20, 32)], [12, 0, CTRL_ATTR_FAMILY_NAME, 0, ...Buffer.from('ethtool\0')]);
  const w = encodeFeaturesSet(27, 'tether.1', { 'tx-checksum-ip-generic': false }).finish(1);
  t.is(w.readUInt16LE(4), 27, 'the family id is the message type');
  t.is(w.readUInt16LE(6), C.NLM_F_REQUEST | C.NLM_F_ACK);
  t.deepEqual([...w.subarray(16, 20)], [ETHTOOL_MSG_FEATURES_SET, 1, 0, 0]);
  // HEADER { DEV_NAME "tether.1\0" } : 4 + (4 + 9 -> 16) = 20
  t.deepEqual([...w.subarray(20, 24)], [20, 0, ETHTOOL_A_FEATURES_HEADER, 0x80]);
  t.deepEqual([...w.subarray(24, 28)], [13, 0, 2, 0]);
  t.is(w.subarray(28, 36).toString(), 'tether.1');
  // WANTED { BITS { BIT { NAME "tx-checksum-ip-generic\0" } } }: the name is 23 bytes, no VALUE attribute
  const name = 'tx-checksum-ip-generic';
  const nameAttr = 4 + name.length + 1; // 27, padded to 28
  t.deepEqual([...w.subarray(40, 44)], [4 + 4 + 4 + 28, 0, ETHTOOL_A_FEATURES_WANTED, 0x80]);
  t.deepEqual([...w.subarray(44, 48)], [4 + 4 + 28, 0, 3, 0x80]);
  t.deepEqual([...w.subarray(48, 52)], [4 + 28, 0, 1, 0x80]);
  t.deepEqual([...w.subarray(52, 56)], [nameAttr, 0, 2, 0]);
  t.is(w.subarray(56, 56 + name.length).toString(), name);
  t.is(w.length, 56 + 24, 'nothing after the name: the feature is turned off');
  const on = encodeFeaturesSet(27, 'tether.1', { 'tx-checksum-ip-generic': true }).finish(1);
  t.deepEqual([...on.subarray(on.length - 4)], [4, 0, 3, 0], 'on adds the VALUE flag');
});
