import test from 'ava';
import { fileURLToPath } from 'node:url';
import { parseNetworkList, type NetworkList } from '../../lib/libcni/conf.js';
import { execPlugin } from '../../lib/libcni/exec.js';
import { Lab } from '../../conformance/lab.js';
import { diffSnapshots, snapshot } from '../../conformance/kernel.js';
import { Netlink } from '../../lib/netlink/handle.js';
import * as C from '../../lib/netlink/constants.js';
import { PluginFailure } from '../../lib/libcni/runtime.js';
import { formatCIDR } from '../../lib/ip/addr.js';
import { hostVethName } from '../../plugins/common/names.js';

// tether-bridge's own behaviour beyond the generic conformance cases, each in a throwaway host namespace.
const dist = fileURLToPath(new URL('../../../dist/bin/', import.meta.url));
const labs: Lab[] = [];
test.after.always(() => { for (const l of labs) l.close(); });

function network(name: string, plugin: Record<string, unknown>, version = '1.1.0'): NetworkList {
  return parseNetworkList(Buffer.from(JSON.stringify({ cniVersion: version, name, plugins: [{ type: 'tether-bridge', bridge: `b${name}`.slice(0, 15), ...plugin }] })));
}

function lab(list: NetworkList): Lab {
  const l = new Lab(list, [dist, '/usr/lib/cni']);
  labs.push(l);
  return l;
}

const ipam = (subnet: string, extra: Record<string, unknown> = {}) => ({ type: 'tether-ipam', ranges: [[{ subnet }]], ...extra });

/** Runs tether-bridge ADD directly with a config, in the lab's host namespace. */
async function rawAdd(l: Lab, conf: Record<string, unknown>) {
  const c = l.newContainer();
  const out = await execPlugin({
    file: `${dist}tether-bridge`, stdin: JSON.stringify({ cniVersion: '1.1.0', name: l.list.name, type: 'tether-bridge', ...conf }),
    env: { ...process.env, CNI_COMMAND: 'ADD', CNI_CONTAINERID: 'raw1', CNI_NETNS: c.path, CNI_IFNAME: 'eth0', CNI_PATH: dist }, timeoutMs: 20_000, netns: l.host,
  });
  return { c, out, json: out.stdout ? JSON.parse(out.stdout) : undefined };
}

test('refused options: a clear CNI error with the right code, and nothing created', async (t) => {
  const l = lab(network('refuse', { ipam: ipam('10.70.0.0/24') }));
  const before = snapshot(l.host);
  const cases: [Record<string, unknown>, number, RegExp][] = [
    [{ vlan: 100, ipam: ipam('10.70.0.0/24') }, 2, /"vlan".*VLAN filtering/],
    [{ macspoofchk: true, ipam: ipam('10.70.0.0/24') }, 2, /macspoofchk/],
    [{ ipMasqBackend: 'iptables', ipam: ipam('10.70.0.0/24') }, 2, /nftables only/],
    [{ mtu: 20, ipam: ipam('10.70.0.0/24') }, 7, /"mtu" must be an integer from 68 to 65535/],
    [{ hairpinMode: true, promiscMode: true, ipam: ipam('10.70.0.0/24') }, 7, /hairpinMode/],
    [{ bridge: 'a/b', ipam: ipam('10.70.0.0/24') }, 7, /"bridge"/],
    [{ isGateway: 'yes', ipam: ipam('10.70.0.0/24') }, 7, /"isGateway" must be true or false/],
    [{ ipam: { type: 'tether-ipam', ranges: [[{ subnet: '10.70.0.1/24' }]] } }, 7, /host bits/],
    [{ ipam: { type: 'no-such-ipam' } }, 7, /plugin "no-such-ipam" not found in CNI_PATH/],
  ];
  for (const [conf, code, re] of cases) {
    const r = await rawAdd(l, conf);
    t.is(r.out.status, 1, JSON.stringify(conf));
    t.is(r.json.code, code, `${JSON.stringify(conf)}: ${r.json.msg}`);
    t.regex(r.json.msg, re);
    Netlink.within(r.c.path, (ctr) => { t.is(ctr.linkByName('eth0'), null, 'no interface in the container'); });
  }
  const after = snapshot(l.host);
  t.deepEqual(diffSnapshots(before, after), [], 'no bridge, veth, address or route left on the host');
  t.deepEqual(await l.reservations(), [], 'no address leaked');
});

test('a link with the bridge\'s name that is not a bridge is refused (code 7), and the address is released', async (t) => {
  const l = lab(network('notbr', { ipam: ipam('10.71.0.0/24') }));
  const other = l.newContainer();
  const { openNetns } = await import('../../lib/netns/netns.js');
  const { closeSync } = await import('node:fs');
  const fd = openNetns(other.path);
  try { Netlink.within(l.host, (nl) => { nl.linkAdd({ kind: 'veth', name: 'bnotbr', peer: { name: 'x', netnsFd: fd } }); }); } finally { closeSync(fd); }
  const c = l.newContainer();
  const e = await t.throwsAsync(l.attach(c), { instanceOf: PluginFailure });
  t.is(e!.code, 7);
  t.regex(e!.message, /"bnotbr" already exists and is a veth, not a bridge/);
  t.deepEqual(await l.reservations(), []);
});

test('a failure after IPAM rolls back the veth and the address (forceAddress conflict)', async (t) => {
  const l = lab(network('rollbk', { isGateway: true, ipam: ipam('10.72.0.0/24') }));
  await Netlink.within(l.host, async (nl) => {
    nl.linkAdd({ kind: 'bridge', name: 'brollbk', up: true });
    const { parseCIDR } = await import('../../lib/ip/addr.js');
    nl.addrAdd(nl.linkByName('brollbk')!.index, parseCIDR('10.72.0.200/24')!);
  });
  const before = snapshot(l.host);
  const c = l.newContainer();
  const e = await t.throwsAsync(l.attach(c), { instanceOf: PluginFailure });
  t.regex(e!.message, /already has 10\.72\.0\.200\/24, not the gateway 10\.72\.0\.1\/24; set "forceAddress"/);
  t.deepEqual(diffSnapshots(before, snapshot(l.host)), [], 'the veth was removed');
  Netlink.within(c.path, (ctr) => { t.is(ctr.linkByName('eth0'), null); });
  t.deepEqual(await l.reservations(), [], 'the address was released');
  // with forceAddress the old address is replaced
  const forced = l.variant('f', (p) => ({ ...p, forceAddress: true, bridge: 'brollbk' }));
  const r = await l.attach(c, forced);
  t.regex(r.ips![0].address, /^10\.72\.0\.\d+\/24$/);
  Netlink.within(l.host, (nl2) => {
    const addrs = nl2.addrs({ family: 4, index: nl2.linkByName('brollbk')!.index }).map((a) => `${a.cidr.ip.bytes.join('.')}/${a.cidr.prefix}`);
    t.deepEqual(addrs, ['10.72.0.1/24']);
  });
  await l.detach(c, forced);
});

test('DEL with an empty CNI_NETNS removes the host end too (found by its deterministic name)', async (t) => {
  const l = lab(network('emptyns', { ipam: ipam('10.73.0.0/24') }));
  const c = l.newContainer();
  const r = await l.attach(c);
  const hostName = hostVethName(c.id, 'eth0');
  t.is(r.interfaces![1].name, hostName);
  await l.runtime.del(l.list, { ...l.spec(c), netns: '' });
  Netlink.within(l.host, (nl) => { t.is(nl.linkByName(hostName), null); });
  t.deepEqual(await l.reservations(), []);
});

test('an ADD refused because another container has the interface, then its DEL: the other container keeps its interface and address', async (t) => {
  const l = lab(network('dupid', { ipam: ipam('10.77.0.0/24') }));
  const c = l.newContainer();
  const first = await l.attach(c);
  // A second attachment (another container ID) for the same namespace and interface name: refused, and
  // the runtime then sends DEL for it, as it must after any failed ADD.
  const dup = { containerID: `${c.id}-dup`, netns: c.path, ifname: 'eth0' };
  const err = await t.throwsAsync(l.runtime.add(l.list, dup));
  t.regex(err!.message, /eth0 already exists/);
  await l.runtime.del(l.list, dup);
  Netlink.within(c.path, (ctr) => {
    const eth0 = ctr.linkByName('eth0');
    t.truthy(eth0, 'the first container still has its eth0');
    t.true(ctr.addrs({ index: eth0!.index }).some((a) => formatCIDR(a.cidr) === first.ips![0].address), 'and its address');
  });
  t.deepEqual(await l.reservations(), [first.ips![0].address.split('/')[0]], 'its reservation is intact');
  await l.detach(c);
  t.deepEqual(await l.reservations(), []);
});

test('a repeated ADD of a live attachment into a new namespace is refused before IPAM: the first keeps its address', async (t) => {
  const l = lab(network('readd', { ipam: ipam('10.78.0.0/24') }));
  const c = l.newContainer();
  const first = await l.attach(c);
  const other = l.newContainer();
  const err = await t.throwsAsync(l.runtime.add(l.list, { containerID: c.id, netns: other.path, ifname: 'eth0' }));
  t.regex(err!.message, /already set up/);
  Netlink.within(other.path, (ctr) => { t.is(ctr.linkByName('eth0'), null, 'nothing in the new namespace'); });
  t.deepEqual(await l.reservations(), [first.ips![0].address.split('/')[0]], 'the first attachment still holds its address');
  await l.detach(c);
});

test('the host end is a pure bridge port: no IPv6 on it (its routes would slow every ADD on a full bridge), and it forwards', async (t) => {
  const l = lab(network('noip6', { isGateway: true, ipam: { type: 'tether-ipam', ranges: [[{ subnet: '10.79.0.0/24' }], [{ subnet: 'fd79::/64' }]] } }));
  const c = l.newContainer();
  const r = await l.attach(c);
  const hostName = r.interfaces![1].name;
  const { inNetns } = await import('../../lib/netns/netns.js');
  const { sysctlGet } = await import('../../lib/netns/sysctl.js');
  t.is(inNetns(l.host, () => sysctlGet(`net/ipv6/conf/${hostName}/disable_ipv6`)), '1');
  Netlink.within(l.host, (nl) => {
    const port = nl.linkByName(hostName)!;
    t.deepEqual(nl.addrs({ index: port.index }), [], 'no address at all on the port');
    t.true(port.up);
    t.false(nl.routes(6).some((rt) => rt.oif === port.index), 'no IPv6 route through the port');
  });
  t.is(r.ips!.length, 2, 'the container still has IPv4 and IPv6');
  await l.detach(c);
});

test('requested MAC (runtimeConfig capability), IPv6 with DAD enabled, routes and DNS from config', async (t) => {
  const list = parseNetworkList(Buffer.from(JSON.stringify({
    cniVersion: '1.1.0', name: 'macdad',
    plugins: [{
      type: 'tether-bridge', bridge: 'bmacdad', isDefaultGateway: true, enabledad: true, capabilities: { mac: true },
      dns: { nameservers: ['10.74.0.53'] },
      ipam: { type: 'tether-ipam', ranges: [[{ subnet: 'fd74::/64' }], [{ subnet: '10.74.0.0/24' }]], routes: [{ dst: '10.99.0.0/16' }] },
    }],
  })));
  const l = lab(list);
  const c = l.newContainer();
  const r = await l.runtime.add(l.list, { ...l.spec(c), capabilityArgs: { mac: '02:74:00:00:00:01' } });
  t.is(r.interfaces![2].mac, '02:74:00:00:00:01');
  t.deepEqual(r.dns, { nameservers: ['10.74.0.53'] });
  t.true(r.routes!.some((x) => x.dst === '10.99.0.0/16'));
  t.true(r.routes!.some((x) => x.dst === '::/0' && x.gw === 'fd74::1'));
  Netlink.within(c.path, (nl) => {
    const eth0 = nl.linkByName('eth0')!;
    t.is(eth0.mac, '02:74:00:00:00:01');
    const v6 = nl.addrs({ family: 6, index: eth0.index }).filter((a) => a.scope === 0);
    t.is(v6.length, 1);
    t.is(v6[0].flags & (C.IFA_F_TENTATIVE | C.IFA_F_DADFAILED), 0, 'DAD finished before ADD returned');
    t.true(nl.routes(4).some((x) => x.dst && x.dst.prefix === 16 && x.gateway !== undefined), 'IPAM route via the gateway');
  });
  await l.runtime.check(l.list, l.spec(c));
  await l.detach(c);
});

test('CHECK catches a removed route and a changed MAC', async (t) => {
  const l = lab(network('chk', { isDefaultGateway: true, ipam: ipam('10.75.0.0/24') }));
  const list = l.list; // with the lab's private IPAM data directory
  const c = l.newContainer();
  await l.attach(c);
  await l.runtime.check(list, l.spec(c));
  Netlink.within(c.path, (nl) => { t.true(nl.routeDel({ family: 4, dst: null })); });
  const e = await t.throwsAsync(l.runtime.check(list, l.spec(c)), { instanceOf: PluginFailure });
  t.is(e!.code, 100);
  t.regex(e!.message, /route 0\.0\.0\.0\/0 via 10\.75\.0\.1 is missing/);
  const { parseMAC } = await import('../../lib/ip/mac.js');
  Netlink.within(c.path, (nl2) => { nl2.linkSet(nl2.linkByName('eth0')!.index, { mac: parseMAC('02:00:00:00:75:75')! }); });
  await t.throwsAsync(l.runtime.check(list, l.spec(c)), { message: /eth0 has MAC 02:00:00:00:75:75/ });
  await l.detach(c);
});

test('STATUS answers 50 when the range is exhausted; GC releases attachments outside the valid set', async (t) => {
  const l = lab(network('stat', { ipam: ipam('10.76.0.0/24', { ranges: [[{ subnet: '10.76.0.0/24', rangeStart: '10.76.0.10', rangeEnd: '10.76.0.11' }]] }) }));
  const list = l.list;
  await l.runtime.status(list);
  const a = l.newContainer();
  const b = l.newContainer();
  await l.attach(a);
  await l.attach(b);
  const e = await t.throwsAsync(l.runtime.status(list), { instanceOf: PluginFailure });
  t.is(e!.code, 50);
  t.regex(e!.message, /no free address in range set 10\.76\.0\.10-10\.76\.0\.11/);
  // GC to the plugin directly: only b stays valid
  const out = await execPlugin({
    file: `${dist}tether-bridge`, netns: l.host, timeoutMs: 20_000,
    stdin: l.runtime.pluginConfig(list, list.plugins[0], '1.1.0', { gc: [{ containerID: b.id, ifname: 'eth0' }] }),
    env: { ...process.env, CNI_COMMAND: 'GC', CNI_PATH: dist },
  });
  t.is(out.status, 0, out.stdout);
  t.is((await l.reservations())!.length, 1);
  await l.runtime.status(list);
  await l.detach(b);
  await l.detach(a);
});

test('ipMasq on a range set spanning two subnets keeps both subnets masqueraded', async (t) => {
  const { nftGetTable, NFPROTO_INET } = await import('../../lib/netlink/nftables.js');
  const { inNetns } = await import('../../lib/netns/netns.js');
  const { masqTableName, subnetsOfComment } = await import('../../plugins/bridge/masq.js');
  const { formatCIDR } = await import('../../lib/ip/addr.js');
  const l = lab(network('twosub', { isGateway: true, ipMasq: true, ipam: { type: 'tether-ipam', blockSize: 30, ranges: [[{ subnet: '10.77.0.0/30' }, { subnet: '10.77.1.0/29' }]] } }));
  const a = l.newContainer();
  const b = l.newContainer();
  const ra = await l.attach(a);
  const rb = await l.attach(b);
  t.regex(ra.ips![0].address, /^10\.77\.0\./);
  t.regex(rb.ips![0].address, /^10\.77\.1\./, 'the first subnet is full: the second container is in the other one');
  const table = inNetns(l.host, () => nftGetTable(NFPROTO_INET, masqTableName(l.list.name)));
  t.deepEqual(subnetsOfComment(table?.comment).map(formatCIDR).sort(), ['10.77.0.0/30', '10.77.1.0/29']);
  // a third ADD from the first subnet's network must not drop the second subnet
  await l.detach(a);
  await l.attach(a);
  const again = inNetns(l.host, () => nftGetTable(NFPROTO_INET, masqTableName(l.list.name)));
  t.deepEqual(subnetsOfComment(again?.comment).map(formatCIDR).sort(), ['10.77.0.0/30', '10.77.1.0/29']);
  await l.detach(a);
  await l.detach(b);
});
