import test from 'ava';
import { closeSync } from 'node:fs';
import { Netlink } from '../../lib/netlink/handle.js';
import { NetlinkError } from '../../lib/netlink/socket.js';
import * as C from '../../lib/netlink/constants.js';
import { inNetnsFd, openNetns } from '../../lib/netns/netns.js';
import { formatCIDR, formatIP, parseCIDR, parseIP } from '../../lib/ip/addr.js';
import { formatMAC, parseMAC } from '../../lib/ip/mac.js';
import { Namespaces } from '../helpers/netns.js';

const ns = new Namespaces();
test.after.always(() => ns.cleanup());

const cidr = (s: string) => parseCIDR(s)!;
const ip = (s: string) => parseIP(s)!;

test('veth with its peer born inside another namespace under its final name', (t) => {
  const a = ns.add('va');
  const b = ns.add('vb');
  const fd = openNetns(b);
  try {
    Netlink.within(a, (nla) => Netlink.within(b, (nlb) => {
      const host = nla.linkAdd({ kind: 'veth', name: 'vh0', mtu: 1400, peer: { name: 'eth0', netnsFd: fd, mtu: 1400, mac: parseMAC('02:aa:bb:cc:dd:ee')! } })!;
      t.is(host.kind, 'veth');
      t.is(host.mtu, 1400);
      const peer = nlb.linkByName('eth0')!;
      t.truthy(peer, 'peer exists in the other namespace');
      t.is(peer.mac, '02:aa:bb:cc:dd:ee');
      t.is(peer.mtu, 1400);
      t.is(peer.parent, host.index, 'IFLA_LINK points at the host end');
      t.is(host.parent, peer.index);
      t.is(nla.linkByName('eth0'), null, 'never created on the host side');
      t.true(nla.linkDel(host.index));
      t.is(nlb.linkByName('eth0'), null, 'deleting one end removes the other');
      t.false(nla.linkDel(host.index), 'second delete reports already gone');
    }));
  } finally { closeSync(fd); }
});

test('linksDelTogether: a veth (and its peer elsewhere) and an ifb in one batch; other groups untouched', (t) => {
  const a = ns.add('ga');
  const b = ns.add('gb');
  const fd = openNetns(b);
  try {
    Netlink.within(a, (nla) => Netlink.within(b, (nlb) => {
      const veth = nla.linkAdd({ kind: 'veth', name: 'gv0', peer: { name: 'eth0', netnsFd: fd } })!;
      const ifb = nla.linkAdd({ kind: 'ifb', name: 'gi0' })!;
      // Bystanders in an operator's group and in a network's group, and a default-group link.
      const op = nla.linkAdd({ kind: 'ifb', name: 'gop' })!;
      nla.linkSet(op.index, { group: 7 });
      const net = nla.linkAdd({ kind: 'bridge', name: 'gnet' })!;
      nla.linkSet(net.index, { group: 0xc0000001 });
      nla.linkAdd({ kind: 'ifb', name: 'gdef' });
      t.is(nla.linksDelTogether([veth.index, ifb.index, 999_999]), 2, 'a missing index is skipped');
      t.is(nla.linkByName('gv0'), null);
      t.is(nla.linkByName('gi0'), null);
      t.is(nlb.linkByName('eth0'), null, 'the peer went with its veth');
      t.is(nla.linkByName('gop')?.group, 7);
      t.is(nla.linkByName('gnet')?.group, 0xc0000001);
      t.truthy(nla.linkByName('gdef'));
      t.is(nla.linksDelTogether([veth.index, ifb.index]), 0, 'all gone already');
      t.is(nla.linksDelTogether([nla.linkByName('gdef')!.index]), 1, 'one link: a plain delete');
    }));
  } finally { closeSync(fd); }
});

test('bridge with options, a port with hairpin, up/mtu/mac/rename', (t) => {
  const a = ns.add('br');
  const b = ns.add('brc');
  const fd = openNetns(b);
  try {
    Netlink.within(a, (nl) => {
      const br = nl.linkAdd({ kind: 'bridge', name: 'tbr0', mtu: 1450, bridge: { stpState: 0, forwardDelay: 0, mcastSnooping: false } })!;
      t.is(br.kind, 'bridge');
      t.is(br.bridge?.stpState, 0);
      t.is(br.bridge?.forwardDelay, 0);
      t.false(br.bridge?.mcastSnooping);
      const v = nl.linkAdd({ kind: 'veth', name: 'tv0', peer: { name: 'eth0', netnsFd: fd } })!;
      nl.linkSet(v.index, { master: br.index, up: true });
      nl.bridgePortSet(v.index, { hairpin: true, isolated: false });
      const port = nl.linkByIndex(v.index)!;
      t.is(port.master, br.index);
      t.true(port.up);
      t.is(port.slaveKind, 'bridge');
      t.true(port.bridgePort?.hairpin);
      t.false(port.bridgePort?.isolated);
      t.deepEqual(nl.links({ master: br.index }).map((l) => l.name), ['tv0']);
      nl.linkSet(br.index, { up: true, mac: parseMAC('02:00:00:00:00:42')!, mtu: 1400 });
      const br2 = nl.linkByName('tbr0')!;
      t.is(br2.mac, '02:00:00:00:00:42');
      t.is(br2.mtu, 1400);
      nl.linkSet(v.index, { up: false });
      nl.linkSet(v.index, { name: 'tv0-renamed' });
      t.truthy(nl.linkByName('tv0-renamed'));
      t.deepEqual(nl.links({ kind: 'bridge' }).map((l) => l.name), ['tbr0']);
    });
  } finally { closeSync(fd); }
});

test('bridge VLAN filtering is refused by this kernel with a clear errno', (t) => {
  Netlink.within(ns.add('vlan'), (nl) => {
    const e = t.throws(() => nl.linkAdd({ kind: 'bridge', name: 'tbrv', bridge: { vlanFiltering: true } }), { instanceOf: NetlinkError });
    t.is(e!.operation, 'RTM_NEWLINK');
    t.is(e!.code, 'EOPNOTSUPP', e!.message);
  });
});

test('vxlan device: VNI, local, port, learning off, underlay', (t) => {
  const a = ns.add('vx');
  const b = ns.add('vxp');
  const fd = openNetns(b);
  try {
    Netlink.within(a, (nl) => {
      const ul = nl.linkAdd({ kind: 'veth', name: 'ul0', up: true, peer: { name: 'ul0', netnsFd: fd } })!;
      nl.addrAdd(ul.index, cidr('198.18.9.1/24'));
      const vx = nl.linkAdd({ kind: 'vxlan', name: 'tvx0', mtu: 1450, vxlan: { vni: 4242, local: ip('198.18.9.1'), port: 8472, learning: false, dev: ul.index } })!;
      t.is(vx.kind, 'vxlan');
      t.is(vx.vxlan?.vni, 4242);
      t.is(formatIP(vx.vxlan!.local!), '198.18.9.1');
      t.is(vx.vxlan?.port, 8472);
      t.false(vx.vxlan?.learning);
      t.is(vx.vxlan?.dev, ul.index);
      // FDB flood entry (appended) and a unicast entry, then the neighbour for the remote gateway
      nl.neighAppend({ family: C.AF_BRIDGE, index: vx.index, mac: parseMAC('00:00:00:00:00:00')!, ip: ip('198.18.9.2'), state: C.NUD_PERMANENT, flags: C.NTF_SELF });
      nl.neighAppend({ family: C.AF_BRIDGE, index: vx.index, mac: parseMAC('00:00:00:00:00:00')!, ip: ip('198.18.9.3'), state: C.NUD_PERMANENT, flags: C.NTF_SELF });
      nl.neighReplace({ family: C.AF_BRIDGE, index: vx.index, mac: parseMAC('02:00:00:00:01:01')!, ip: ip('198.18.9.2'), state: C.NUD_PERMANENT, flags: C.NTF_SELF });
      nl.neighReplace({ family: C.AF_INET, index: vx.index, ip: ip('10.244.1.0'), mac: parseMAC('02:00:00:00:01:01')!, state: C.NUD_PERMANENT, flags: 0 });
      const fdb = nl.neighbors(C.AF_BRIDGE, vx.index).filter((n) => n.ip).map((n) => `${formatMAC(n.mac!)} ${formatIP(n.ip!)}`).sort();
      t.deepEqual(fdb, ['00:00:00:00:00:00 198.18.9.2', '00:00:00:00:00:00 198.18.9.3', '02:00:00:00:01:01 198.18.9.2']);
      const arp = nl.neighbors(C.AF_INET, vx.index);
      t.is(arp.length, 1);
      t.is(arp[0].state & C.NUD_PERMANENT, C.NUD_PERMANENT);
      t.true(nl.neighDel({ family: C.AF_BRIDGE, index: vx.index, mac: parseMAC('00:00:00:00:00:00')!, ip: ip('198.18.9.3'), state: 0, flags: C.NTF_SELF }));
      // The kernel answers 0 when the MAC exists but that remote is already gone: deleting twice is harmless.
      t.notThrows(() => nl.neighDel({ family: C.AF_BRIDGE, index: vx.index, mac: parseMAC('00:00:00:00:00:00')!, ip: ip('198.18.9.3'), state: 0, flags: C.NTF_SELF }));
      t.false(nl.neighDel({ family: C.AF_BRIDGE, index: vx.index, mac: parseMAC('02:00:00:00:09:09')!, state: 0, flags: C.NTF_SELF }), 'an unknown MAC is ENOENT: false');
      t.is(nl.neighbors(C.AF_BRIDGE, vx.index).filter((n) => n.ip).length, 2);
    });
  } finally { closeSync(fd); }
});

test('addresses v4 and v6: add, list, EEXIST, replace, delete', (t) => {
  const a = ns.add('addr');
  const b = ns.add('addrp');
  const fd = openNetns(b);
  try {
    Netlink.within(a, (nl) => {
      const v = nl.linkAdd({ kind: 'veth', name: 'ta0', up: true, peer: { name: 'tb0', netnsFd: fd } })!;
      nl.addrAdd(v.index, cidr('10.77.0.2/24'));
      nl.addrAdd(v.index, cidr('fd77::2/64'), { flags: C.IFA_F_NODAD });
      const e = t.throws(() => nl.addrAdd(v.index, cidr('10.77.0.2/24')), { instanceOf: NetlinkError });
      t.is(e!.code, 'EEXIST');
      t.notThrows(() => nl.addrAdd(v.index, cidr('10.77.0.2/24'), { replace: true }));
      const held = nl.addrs({ index: v.index });
      t.deepEqual(held.filter((x) => x.scope === 0).map((x) => formatCIDR(x.cidr)).sort(), ['10.77.0.2/24', 'fd77::2/64']);
      t.is(held.find((x) => x.family === 6 && x.scope === 0)!.flags & C.IFA_F_NODAD, C.IFA_F_NODAD);
      t.true(held.filter((x) => x.family === 4).every((x) => x.index === v.index));
      t.deepEqual(nl.addrs({ family: 4, index: v.index }).map((x) => formatCIDR(x.cidr)), ['10.77.0.2/24']);
      t.true(nl.addrDel(v.index, cidr('10.77.0.2/24')));
      t.false(nl.addrDel(v.index, cidr('10.77.0.2/24')));
    });
  } finally { closeSync(fd); }
});

test('routes: gateway, onlink, table > 255, metric, blackhole, v6, replace, delete, kernel text on error', (t) => {
  const a = ns.add('rt');
  const b = ns.add('rtp');
  const fd = openNetns(b);
  try {
    Netlink.within(a, (nl) => {
      const v = nl.linkAdd({ kind: 'veth', name: 'tr0', up: true, peer: { name: 'tr1', netnsFd: fd } })!;
      nl.addrAdd(v.index, cidr('10.66.0.1/24'));
      nl.addrAdd(v.index, cidr('fd66::1/64'), { flags: C.IFA_F_NODAD });
      nl.routeAdd({ family: 4, dst: cidr('10.55.0.0/24'), gateway: ip('10.66.0.254') });
      nl.routeAdd({ family: 4, dst: cidr('10.54.0.0/24'), gateway: ip('198.18.7.7'), oif: v.index, onlink: true });
      nl.routeAdd({ family: 4, dst: cidr('10.53.0.0/24'), oif: v.index, table: 1000, priority: 50 });
      nl.routeAdd({ family: 4, dst: cidr('10.52.0.0/26'), type: C.RTN_BLACKHOLE, protocol: 250 });
      nl.routeAdd({ family: 4, dst: null, gateway: ip('10.66.0.254'), mtu: 1400, advmss: 1360 });
      nl.routeAdd({ family: 6, dst: cidr('fd55::/64'), gateway: ip('fd66::fe') });
      const main = nl.routes(4);
      const find = (d: string | null) => main.find((r) => (r.dst ? formatCIDR(r.dst) : null) === d);
      t.is(formatIP(find('10.55.0.0/24')!.gateway!), '10.66.0.254');
      t.true(find('10.54.0.0/24')!.onlink);
      t.is(find('10.52.0.0/26')!.type, C.RTN_BLACKHOLE);
      t.is(find('10.52.0.0/26')!.protocol, 250);
      t.is(find(null)!.mtu, 1400);
      t.is(find(null)!.advmss, 1360);
      t.is(find('10.53.0.0/24'), undefined, 'table 1000 is not in main');
      const t1000 = nl.routes(4, { table: 1000 });
      t.is(t1000.length, 1);
      t.is(t1000[0].priority, 50);
      t.is(t1000[0].table, 1000);
      t.true(nl.routes(6).some((r) => r.dst && formatCIDR(r.dst) === 'fd55::/64' && formatIP(r.gateway!) === 'fd66::fe'));
      t.is(nl.routes(4, { table: 0 }).filter((r) => r.table === 255).length > 0, true, 'table 0 lists every table');
      nl.routeReplace({ family: 4, dst: cidr('10.55.0.0/24'), gateway: ip('10.66.0.253') });
      t.is(formatIP(nl.routes(4).find((r) => r.dst && formatCIDR(r.dst) === '10.55.0.0/24')!.gateway!), '10.66.0.253');
      // delete works for kernel-made (proto kernel, scope link) routes too: protocol and type are left open
      t.true(nl.routeDel({ family: 4, dst: cidr('10.66.0.0/24'), oif: v.index }));
      t.true(nl.routeDel({ family: 4, dst: cidr('10.53.0.0/24'), table: 1000 }));
      t.true(nl.routeDel({ family: 4, dst: cidr('10.52.0.0/26') }));
      t.false(nl.routeDel({ family: 4, dst: cidr('10.52.0.0/26') }));
      const e = t.throws(() => nl.routeAdd({ family: 4, dst: cidr('10.51.0.0/24'), gateway: ip('10.200.0.1') }), { instanceOf: NetlinkError });
      t.is(e!.code, 'ENETUNREACH');
      t.is(e!.kernelMessage, 'Nexthop has invalid gateway');
    });
  } finally { closeSync(fd); }
});

test('link lookups of missing names and indexes return null; bad requests carry kernel text', (t) => {
  Netlink.within(ns.add('miss'), (nl) => {
    t.is(nl.linkByName('nosuch0'), null);
    t.is(nl.linkByIndex(99999), null);
    const e = t.throws(() => nl.linkAdd({ kind: 'vxlan', name: 'bad', vxlan: { vni: 99_999_999 } }), { instanceOf: NetlinkError });
    t.regex(e!.kernelMessage ?? '', /VXLAN ID/);
  });
});

test('Netlink.within: a handle on a path, an open fd or the current namespace, closed after fn returns, throws or settles', async (t) => {
  const a = ns.add('within');
  Netlink.within(a, (nl) => { nl.linkAdd({ kind: 'bridge', name: 'tw0' }); });
  const names = (nl: Netlink) => nl.links().map((l) => l.name).sort();
  let kept: Netlink | undefined;
  t.deepEqual(Netlink.within(a, (nl) => { kept = nl; return names(nl); }), ['lo', 'tw0'], 'by path');
  t.throws(() => kept!.links(), { message: /closed/ }, 'closed after fn returned');
  const fd = openNetns(a);
  try {
    t.deepEqual(Netlink.within({ fd }, (nl) => { kept = nl; return names(nl); }), ['lo', 'tw0'], 'by fd');
    t.throws(() => kept!.links(), { message: /closed/ });
    t.deepEqual(inNetnsFd(fd, () => Netlink.within((nl) => { kept = nl; return names(nl); })), ['lo', 'tw0'], 'the current namespace');
    t.throws(() => kept!.links(), { message: /closed/ });
  } finally { closeSync(fd); }
  t.throws(() => Netlink.within(a, (nl) => { kept = nl; throw new Error('boom'); }), { message: 'boom' });
  t.throws(() => kept!.links(), { message: /closed/ }, 'closed when fn threw');
  let during = false;
  const r = await Netlink.within(a, async (nl) => {
    kept = nl;
    await new Promise((res) => setTimeout(res, 1));
    during = names(nl).includes('tw0'); // still open across the await, still in the namespace
    return 7;
  });
  t.is(r, 7);
  t.true(during, 'usable after an await');
  t.throws(() => kept!.links(), { message: /closed/ }, 'closed once the promise settled');
  await t.throwsAsync(Netlink.within(a, async (nl) => { kept = nl; await Promise.resolve(); throw new Error('late'); }), { message: 'late' });
  t.throws(() => kept!.links(), { message: /closed/ }, 'closed once the promise was rejected');
});
