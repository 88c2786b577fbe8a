import test from 'ava';
import { formatCIDR, parseCIDR } from '../../lib/ip/addr.js';
import { AgentConfigError, configMode, parseAgentConfig } from '../../tetherd/config.js';
import { parseBgpAgentConfig, type BgpAgentConfig } from '../../tetherd/bgp-config.js';
import { announcementChanges, parseBlock, parseNodeRecord, peersFromTopology, planAnnouncements, type Block } from '../../tetherd/bgp-plan.js';

const cidr = (s: string) => parseCIDR(s)!;
const block = (c: string, node: string): Block => ({ cidr: cidr(c), node });
const base = { mode: 'bgp', nodeName: 'n1', etcd: { endpoints: ['http://127.0.0.1:2379'] } };
const summary = (m: ReturnType<typeof planAnnouncements>) => [...m.values()].map((a) => `${formatCIDR(a.prefix)} ${a.blackhole ? 'blackhole' : 'plain'}`).sort();

test('planAnnouncements: each of our blocks once, blackholed, whatever its pods; nothing of other nodes\' blocks', (t) => {
  const blocks = [block('10.244.0.0/26', 'n1'), block('10.244.0.64/26', 'n2'), block('10.244.0.128/26', 'n1'), block('fd44::/122', 'n1')];
  const pods = [cidr('10.244.0.2/32'), cidr('10.244.0.3/32'), cidr('10.244.0.130/32'), cidr('fd44::2/128')];
  t.deepEqual(summary(planAnnouncements('n1', blocks, pods)), ['10.244.0.0/26 blackhole', '10.244.0.128/26 blackhole', 'fd44::/122 blackhole']);
  t.deepEqual(summary(planAnnouncements('n1', blocks, [])), ['10.244.0.0/26 blackhole', '10.244.0.128/26 blackhole', 'fd44::/122 blackhole'], 'an empty block is still ours');
});

test('planAnnouncements: a pod address outside our blocks is borrowed: its /32 (/128) without blackhole; prefixes that are not host routes are ignored', (t) => {
  const blocks = [block('10.244.0.0/26', 'n1'), block('10.244.0.64/26', 'n2')];
  const pods = [cidr('10.244.0.5/32'), cidr('10.244.0.70/32'), cidr('fd44::9/128'), cidr('10.9.0.0/24')];
  t.deepEqual(summary(planAnnouncements('n1', blocks, pods)), ['10.244.0.0/26 blackhole', '10.244.0.70/32 plain', 'fd44::9/128 plain']);
  t.deepEqual(summary(planAnnouncements('n3', blocks, [cidr('10.244.0.5/32')])), ['10.244.0.5/32 plain'], 'a node with no block borrows');
});

test('announcementChanges: new and changed prefixes are announced, missing ones withdrawn, equal ones left alone', (t) => {
  const current = new Map([['10.244.0.0/26', true], ['10.244.0.70/32', false], ['10.244.1.0/26', true]]);
  const want = planAnnouncements('n1', [block('10.244.0.0/26', 'n1'), block('10.244.0.64/26', 'n1')], [cidr('10.244.0.70/32'), cidr('10.244.2.1/32')]);
  const ch = announcementChanges(current, want);
  // 10.244.0.70/32 is now inside our new block: it turns into the block (the /32 is withdrawn).
  t.deepEqual(ch.announce.map((a) => `${formatCIDR(a.prefix)} ${a.blackhole}`).sort(), ['10.244.0.64/26 true', '10.244.2.1/32 false']);
  t.deepEqual(ch.withdraw.sort(), ['10.244.0.70/32', '10.244.1.0/26']);
  t.deepEqual(announcementChanges(new Map([['10.244.0.0/26', true]]), planAnnouncements('n1', [block('10.244.0.0/26', 'n1')], [])), { announce: [], withdraw: [] });
});

test('parseBlock / parseNodeRecord: stored IPAM blocks and node records; anything else is null', (t) => {
  const rec = { cidr: '10.244.0.0/30', node: 'n2', allocations: ['c1/eth0', null, null, null], next: 1 };
  t.deepEqual(parseBlock(JSON.stringify(rec)), { cidr: cidr('10.244.0.0/30'), node: 'n2' });
  t.is(parseBlock('{"cidr":"10.244.0.0/30","node":"n2"}'), null, 'no allocations');
  t.is(parseBlock('not json'), null);
  t.deepEqual(parseNodeRecord('{"node":"n2","underlayIP":"198.18.0.12","asn":64512,"routerId":"198.18.0.12","backend":"bgp"}')?.underlayIP, '198.18.0.12');
  t.is(parseNodeRecord('{"node":"n2","underlayIP":"nope","asn":64512}'), null);
});

test('config: defaults (AS 64512, port 179, mesh, graceful restart, the status file cnictl reads, IPAM on the same etcd)', (t) => {
  const c = parseBgpAgentConfig(base);
  t.is(c.asn, 64512);
  t.deepEqual(c.listen, { address: undefined, port: 179 });
  t.deepEqual(c.topology, { kind: 'mesh' });
  t.true(c.gracefulRestart);
  t.is(c.statusFile, '/run/tether/bgp-status.json');
  t.deepEqual(c.ipam, { network: 'tether', etcd: c.etcd });
  t.is(c.maxPrefix, undefined);
  t.is(configMode(base), 'bgp');
  t.is(configMode({}), 'vxlan');
});

test('config: route reflectors and explicit peers replace the mesh; bad fields are named', (t) => {
  t.deepEqual(parseBgpAgentConfig({ ...base, routeReflectors: ['198.18.0.250'] }).topology, { kind: 'routeReflectors', addresses: ['198.18.0.250'] });
  const p = parseBgpAgentConfig({ ...base, asn: 65001, peers: [{ address: '198.18.0.1' }, { address: '198.18.0.2', asn: 65002 }] }).topology;
  t.deepEqual(p, { kind: 'peers', peers: [{ address: '198.18.0.1', asn: 65001 }, { address: '198.18.0.2', asn: 65002 }] });
  const bad = (o: object, re: RegExp) => t.throws(() => parseBgpAgentConfig({ ...base, ...o }), { instanceOf: AgentConfigError, message: re });
  bad({ asn: 0 }, /"asn" must be an integer/);
  bad({ routerId: 'fd00::1' }, /"routerId" must be an IPv4 address/);
  bad({ routeReflectors: ['x'] }, /"routeReflectors\[0\]" must be an IP address/);
  bad({ peers: [{ address: '198.18.0.1', asn: -1 }] }, /"asn" must be an integer/);
  bad({ topology: 'ring' }, /"topology" must be "mesh"/);
  bad({ maxPrefix: 0 }, /"maxPrefix"/);
  bad({ statusFile: 'rel' }, /"statusFile" must be an absolute path/);
  bad({ etcd: undefined }, /"etcd" is required/);
  t.throws(() => parseAgentConfig({ ...base, pool: '10.244.0.0/16' }), { instanceOf: AgentConfigError, message: /"mode" must be "vxlan"/ }, 'the VXLAN parser refuses a BGP file');
  t.throws(() => configMode({ mode: 'ipip' }), { message: /"mode" must be "vxlan" or "bgp"/ });
});

test('peersFromTopology: mesh of the registered nodes with one active side per pair; reflectors only; per-peer options from the config', (t) => {
  const c = parseBgpAgentConfig({ ...base, maxPrefix: 500, holdTime: 30 }) as BgpAgentConfig;
  const self = { name: 'n2', address: '198.18.0.12', asn: 64512 };
  const nodes = [{ name: 'n1', address: '198.18.0.11', asn: 64512 }, self, { name: 'n3', address: '198.18.0.13', asn: 65003 }];
  const mesh = peersFromTopology(c, self, nodes);
  t.deepEqual(mesh.map((p) => [p.address, p.asn, p.passive]), [['198.18.0.11', 64512, true], ['198.18.0.13', 65003, false]], 'the higher address waits; ASN per node');
  for (const p of mesh) t.like(p, { maxPrefix: 500, holdTime: 30, gracefulRestart: true, localAddress: '198.18.0.12', port: 179 });
  t.deepEqual(peersFromTopology(c, self, [nodes[0]]).map((p) => p.address), ['198.18.0.11'], 'our own record not listed yet');
  const rr = parseBgpAgentConfig({ ...base, routeReflectors: ['198.18.0.250', '198.18.0.12'] });
  t.deepEqual(peersFromTopology(rr, self, nodes).map((p) => [p.address, p.asn, p.passive]), [['198.18.0.250', 64512, undefined]], 'reflectors only, never ourselves');
});
