import test from 'ava';
import * as C from '../../lib/netlink/constants.js';
import { decodeAddr, encodeAddr } from '../../lib/netlink/addr.js';
import { decodeLink, encodeBridgePort, encodeNewLink, encodeSetLink, ifinfomsg } from '../../lib/netlink/link.js';
import { decodeNeigh, encodeNeigh } from '../../lib/netlink/neigh.js';
import { decodeRoute, encodeRoute } from '../../lib/netlink/route.js';
import { decodeError, NetlinkError } from '../../lib/netlink/socket.js';
import { Attrs, MessageWriter, parseMessages } from '../../lib/netlink/wire.js';
import { formatCIDR, formatIP, ipFromBytes, parseCIDR, parseIP } from '../../lib/ip/addr.js';
import { formatMAC, parseMAC } from '../../lib/ip/mac.js';
import { allReplies, messages, vector } from '../helpers/vectors.js';

const encoded = (w: MessageWriter) => parseMessages(Buffer.from(w.finish(7)))[0];
const attrs = (payload: Buffer, headerLen: number) => new Attrs(payload, headerLen);

test('veth with peer born in another netns: our request carries what iproute2 sends', (t) => {
  const theirs = messages(vector('01-veth-peer-netns'), 'request')[0];
  const ours = encoded(encodeNewLink({ kind: 'veth', name: 'vtest0', peer: { name: 'eth0', netnsFd: 4 } }));
  for (const m of [theirs, ours]) {
    t.is(m.type, C.RTM_NEWLINK);
    t.is(m.flags & (C.NLM_F_CREATE | C.NLM_F_EXCL | C.NLM_F_ACK), C.NLM_F_CREATE | C.NLM_F_EXCL | C.NLM_F_ACK);
    const a = attrs(m.payload, 16);
    t.is(a.str(C.IFLA_IFNAME), 'vtest0');
    const info = a.nested(C.IFLA_LINKINFO)!;
    t.is(info.str(C.IFLA_INFO_KIND), 'veth');
    const peer = info.nested(C.IFLA_INFO_DATA)!.get(C.VETH_INFO_PEER)!;
    const peerAttrs = new Attrs(peer, 16); // the peer is an ifinfomsg followed by attributes
    t.is(peerAttrs.str(C.IFLA_IFNAME), 'eth0');
    t.is(peerAttrs.u32(C.IFLA_NET_NS_FD), 4);
  }
  // We flag nests as NLA_F_NESTED; iproute2 does not for IFLA_LINKINFO. The kernel accepts both.
  // ifinfomsg (16) + IFLA_IFNAME "vtest0\0" (4 + 7, padded to 12), then IFLA_LINKINFO's type field
  t.is(ours.payload.readUInt16LE(16 + 12 + 2), C.IFLA_LINKINFO | C.NLA_F_NESTED);
});

test('an ACK decodes as success', (t) => {
  const ack = messages(vector('01-veth-peer-netns'), 'reply')[0];
  t.is(ack.type, C.NLMSG_ERROR);
  t.is(decodeError(ack, 'RTM_NEWLINK'), null);
});

test('bridge link reply decodes to the values ip -d shows', (t) => {
  const v = vector('02-bridge-show');
  const link = decodeLink(messages(v, 'reply')[0].payload);
  const want = v.ipJson[0];
  t.is(link.name, 'br-t0');
  t.is(link.index, want.ifindex);
  t.is(link.kind, 'bridge');
  t.is(link.mtu, 1400);
  t.is(link.mac, want.address);
  t.is(link.up, want.flags.includes('UP'));
  t.is(link.bridge?.stpState, want.linkinfo.info_data.stp_state);
  t.is(link.bridge?.forwardDelay, want.linkinfo.info_data.forward_delay);
  t.is(link.bridge?.ageingTime, want.linkinfo.info_data.ageing_time);
  t.is(link.bridge?.mcastSnooping, want.linkinfo.info_data.mcast_snooping === 1);
});

test('bridge create request: options our encoder writes match iproute2 values', (t) => {
  const theirs = messages(vector('02-bridge-create'), 'request')[0];
  const ours = encoded(encodeNewLink({ kind: 'bridge', name: 'br-t0', bridge: { stpState: 0, forwardDelay: 0, mcastSnooping: false } }));
  for (const m of [theirs, ours]) {
    const data = attrs(m.payload, 16).nested(C.IFLA_LINKINFO)!.nested(C.IFLA_INFO_DATA)!;
    t.is(data.u32(C.IFLA_BR_STP_STATE), 0);
    t.is(data.u32(C.IFLA_BR_FORWARD_DELAY), 0);
    t.is(data.u8(C.IFLA_BR_MCAST_SNOOPING), 0);
  }
});

test('vxlan link reply decodes VNI, local, port, learning, underlay', (t) => {
  const v = vector('03-vxlan-show');
  const link = decodeLink(messages(v, 'reply')[0].payload);
  const d = v.ipJson[0].linkinfo.info_data;
  t.is(link.kind, 'vxlan');
  t.is(link.vxlan?.vni, d.id);
  t.is(formatIP(link.vxlan!.local!), d.local);
  t.is(link.vxlan?.port, d.port);
  t.is(link.vxlan?.learning, d.learning);
  t.is(link.vxlan?.ageing, d.ageing);
  t.is(link.vxlan?.udpCsum, d.udp_csum);
  t.truthy(link.vxlan?.dev);
});

test('vxlan create: our request encodes the port big-endian like iproute2', (t) => {
  const theirs = messages(vector('03-vxlan-create'), 'request')[0];
  const ours = encoded(encodeNewLink({ kind: 'vxlan', name: 'vx-t0', vxlan: { vni: 42, local: parseIP('198.18.0.1')!, port: 4789, learning: false, dev: 3 } }));
  for (const m of [theirs, ours]) {
    const data = attrs(m.payload, 16).nested(C.IFLA_LINKINFO)!.nested(C.IFLA_INFO_DATA)!;
    t.is(data.u32(C.IFLA_VXLAN_ID), 42);
    t.deepEqual([...data.get(C.IFLA_VXLAN_PORT)!], [0x12, 0xb5]);
    t.is(formatIP(ipFromBytes(data.get(C.IFLA_VXLAN_LOCAL)!)), '198.18.0.1');
    t.is(data.u8(C.IFLA_VXLAN_LEARNING), 0);
  }
});

test('hairpin: our bridge-port request is byte-identical to `bridge link set ... hairpin on`', (t) => {
  const v = vector('04-bridge-port-master-hairpin');
  const theirs = messages(v, 'request', 1)[0];
  const index = theirs.payload.readInt32LE(4);
  const ours = encoded(encodeBridgePort(index, { hairpin: true }));
  t.is(theirs.type, C.RTM_SETLINK);
  t.deepEqual(ours.payload, theirs.payload);
  t.is(ours.flags, theirs.flags);
  // and the result: the port shows hairpin on
  t.true(v.ipJson[0].linkinfo.info_slave_data.hairpin);
});

test('set master: our request matches iproute2 byte for byte', (t) => {
  const theirs = messages(vector('04-bridge-port-master-hairpin'), 'request', 0)[0];
  const a = attrs(theirs.payload, 16);
  const ours = encoded(encodeSetLink(theirs.payload.readInt32LE(4), { master: a.u32(C.IFLA_MASTER)! }));
  t.deepEqual(ours.payload, theirs.payload);
});

test('address add requests and the address dump', (t) => {
  const v = vector('05-addr-add');
  const v4 = messages(v, 'request', 0)[0];
  t.is(v4.type, C.RTM_NEWADDR);
  const a4 = attrs(v4.payload, 8);
  t.is([...a4.get(C.IFA_LOCAL)!].join('.'), '10.99.0.1');
  t.is(v4.payload[1], 24);
  const ours4 = encoded(encodeAddr('add', v4.payload.readUInt32LE(4), parseCIDR('10.99.0.1/24')!));
  t.deepEqual(attrs(ours4.payload, 8).get(C.IFA_LOCAL), a4.get(C.IFA_LOCAL));
  t.is([...attrs(ours4.payload, 8).get(C.IFA_BROADCAST)!].join('.'), '10.99.0.255');
  const v6 = messages(v, 'request', 1)[0];
  t.is(v6.payload[2] & C.IFA_F_NODAD, C.IFA_F_NODAD); // nodad travels in the header byte
  const ours6 = encoded(encodeAddr('add', 4, parseCIDR('fd99::1/64')!, { flags: C.IFA_F_NODAD }));
  t.is(ours6.payload[2], v6.payload[2]);
  t.false(attrs(ours6.payload, 8).has(C.IFA_BROADCAST));

  const dump = vector('05-addr-dump');
  const decoded = allReplies(dump).filter((m) => m.type === C.RTM_NEWADDR).map((m) => decodeAddr(m.payload)!);
  const want = dump.ipJson[0].addr_info.map((x: any) => `${x.local}/${x.prefixlen}`);
  t.deepEqual(decoded.map((d) => formatCIDR(d.cidr)), want);
  t.true(decoded.every((d) => d.index === dump.ipJson[0].ifindex));
  t.is(decoded.find((d) => d.family === 6 && d.scope === 0)!.flags & C.IFA_F_NODAD, C.IFA_F_NODAD);
});

test('route requests: table > 255 goes in RTA_TABLE, onlink in rtm_flags, blackhole type', (t) => {
  const reqs = vector('06-route-add').messages.filter((m) => m.dir === 'request').map((m) => {
    const b = Buffer.from(m.hex, 'hex');
    return { cmd: m.command, msg: parseMessages(b.subarray(0, b.readUInt32LE(0)))[0] };
  });
  const byCmd = (s: string) => reqs.find((r) => r.cmd.includes(s))!.msg;
  const table = byCmd('table 1000');
  t.is(table.payload[4], 0);
  t.is(attrs(table.payload, 12).u32(C.RTA_TABLE), 1000);
  t.is(attrs(table.payload, 12).u32(C.RTA_PRIORITY), 50);
  const ours = encoded(encodeRoute('add', { family: 4, dst: parseCIDR('10.96.0.0/24')!, oif: 4, table: 1000, priority: 50 }));
  t.is(ours.payload[4], 0);
  t.is(attrs(ours.payload, 12).u32(C.RTA_TABLE), 1000);
  t.is(ours.payload[6], C.RT_SCOPE_LINK); // directly connected: link scope, as iproute2 picks
  t.is(ours.payload[6], table.payload[6]);
  const onlink = byCmd('onlink');
  t.is(onlink.payload.readUInt32LE(8) & C.RTNH_F_ONLINK, C.RTNH_F_ONLINK);
  t.is(encoded(encodeRoute('add', { family: 4, dst: parseCIDR('10.97.0.0/24')!, gateway: parseIP('198.18.0.9')!, oif: 3, onlink: true })).payload.readUInt32LE(8), C.RTNH_F_ONLINK);
  const bh = byCmd('blackhole');
  t.is(bh.payload[7], C.RTN_BLACKHOLE);
  t.is(bh.payload[5], 250);
  const v6 = byCmd('fd98::/64');
  t.is(formatIP(ipFromBytes(attrs(v6.payload, 12).get(C.RTA_GATEWAY)!)), 'fd99::fe');
});

test('route delete: protocol and type left open, scope nowhere, exactly like iproute2', (t) => {
  const theirs = messages(vector('06-route-del'), 'request')[0];
  const ours = encoded(encodeRoute('del', { family: 4, dst: parseCIDR('10.98.0.0/24')!, gateway: parseIP('10.99.0.254')! }));
  t.deepEqual([...ours.payload.subarray(0, 12)], [...theirs.payload.subarray(0, 12)]);
  const a = attrs(ours.payload, 12);
  t.deepEqual(a.get(C.RTA_DST), attrs(theirs.payload, 12).get(C.RTA_DST));
  t.deepEqual(a.get(C.RTA_GATEWAY), attrs(theirs.payload, 12).get(C.RTA_GATEWAY));
});

test('route dump decodes to what ip -j route show table all reports', (t) => {
  const v = vector('06-route-dump');
  const routes = allReplies(v).filter((m) => m.type === C.RTM_NEWROUTE).map((m) => decodeRoute(m.payload)!).filter(Boolean);
  const key = (dst: string, table: number) => routes.find((r) => r.dst && formatCIDR(r.dst) === dst && r.table === table);
  const t1000 = key('10.96.0.0/24', 1000)!;
  t.is(t1000.priority, 50);
  t.is(t1000.scope, C.RT_SCOPE_LINK);
  const onlink = key('10.97.0.0/24', 254)!;
  t.true(onlink.onlink);
  t.is(formatIP(onlink.gateway!), '198.18.0.9');
  const bh = key('10.95.0.0/26', 254)!;
  t.is(bh.type, C.RTN_BLACKHOLE);
  t.is(bh.protocol, 250);
  const kernel = key('10.99.0.0/24', 254)!;
  t.is(kernel.protocol, C.RTPROT_KERNEL);
  t.is(formatIP(kernel.prefsrc!), '10.99.0.1');
  // every route ip(8) listed with a dst is decoded
  const listed = v.ipJson.filter((r: any) => r.dst !== 'default' && !r.dst.includes('/')).length;
  t.true(routes.length >= v.ipJson.length - listed);
  t.true(routes.some((r) => r.family === 6 && r.dst && formatCIDR(r.dst) === 'fd98::/64' && r.gateway && formatIP(r.gateway) === 'fd99::fe'));
});

test('neighbour and FDB requests, FDB dump', (t) => {
  const neigh = messages(vector('07-neigh-add'), 'request')[0];
  const n = decodeNeigh(neigh.payload);
  t.is(formatIP(n.ip!), '10.99.0.77');
  t.is(formatMAC(n.mac!), '02:00:00:00:00:77');
  t.is(n.state, C.NUD_PERMANENT);
  const fdb = vector('07-fdb-add');
  const append = messages(fdb, 'request', 0)[0];
  t.is(append.flags & C.NLM_F_APPEND, C.NLM_F_APPEND);
  const ours = encoded(encodeNeigh('append', { family: C.AF_BRIDGE, index: append.payload.readInt32LE(4), mac: parseMAC('00:00:00:00:00:00')!, ip: parseIP('198.18.0.2')!, state: C.NUD_PERMANENT | C.NUD_NOARP, flags: C.NTF_SELF }));
  t.is(ours.flags, append.flags);
  t.deepEqual([...ours.payload.subarray(0, 12)], [...append.payload.subarray(0, 12)]);
  t.deepEqual(decodeNeigh(ours.payload), decodeNeigh(append.payload));
  const dump = vector('07-fdb-dump');
  const entries = allReplies(dump).filter((m) => m.type === C.RTM_NEWNEIGH).map((m) => decodeNeigh(m.payload));
  t.deepEqual(entries.map((e) => ({ mac: formatMAC(e.mac!), dst: formatIP(e.ip!), self: (e.flags & C.NTF_SELF) !== 0, permanent: (e.state & C.NUD_PERMANENT) !== 0 })),
    dump.ipJson.map((e: any) => ({ mac: e.mac, dst: e.dst, self: e.flags.includes('self'), permanent: e.state === 'permanent' })));
});

test('errors: errno names and the kernel extended-ack text, capped and uncapped', (t) => {
  const eexist = decodeError(messages(vector('08-error-eexist'), 'reply')[0], 'RTM_NEWLINK')!;
  t.true(eexist instanceof NetlinkError);
  t.is(eexist.code, 'EEXIST');
  t.is(eexist.kernelMessage, undefined);
  const gwReply = messages(vector('08-error-extack-gateway'), 'reply')[0];
  t.is(gwReply.flags & C.NLM_F_CAPPED, 0, 'iproute2 does not cap: the whole request is echoed before the TLVs');
  const gw = decodeError(gwReply, 'RTM_NEWROUTE')!;
  t.is(gw.code, 'ENETUNREACH');
  t.is(gw.kernelMessage, 'Nexthop has invalid gateway');
  t.regex(gw.message, /RTM_NEWROUTE: ENETUNREACH.*Nexthop has invalid gateway/);
  const vniReply = messages(vector('08-error-extack-vni'), 'reply')[0];
  t.is(vniReply.flags & C.NLM_F_CAPPED, C.NLM_F_CAPPED, 'sent with NETLINK_CAP_ACK, as our socket does');
  const vni = decodeError(vniReply, 'RTM_NEWLINK')!;
  t.is(vni.code, 'ERANGE');
  t.is(vni.kernelMessage, 'VXLAN ID must be lower than 16777216');
  const enodev = vector('08-error-enodev').messages.filter((m) => m.dir === 'reply').flatMap((m) => parseMessages(Buffer.from(m.hex, 'hex')))
    .filter((m) => m.type === C.NLMSG_ERROR).map((m) => decodeError(m, 'RTM_DELLINK')!);
  t.true(enodev.length > 0 && enodev.every((e) => e.code === 'ENODEV'));
});

test('link dump: every link with its kind, master and parent', (t) => {
  const v = vector('09-link-dump');
  const replies = allReplies(v);
  t.is(replies.at(-1)!.type, C.NLMSG_DONE);
  const links = replies.filter((m) => m.type === C.RTM_NEWLINK).map((m) => decodeLink(m.payload));
  t.deepEqual(links.map((l) => l.name), v.ipJson.map((j: any) => j.ifname));
  for (const [i, l] of links.entries()) {
    const j = v.ipJson[i];
    t.is(l.index, j.ifindex);
    t.is(l.mtu, j.mtu);
    t.is(l.kind, j.linkinfo?.info_kind ?? '');
    t.is(l.mac, j.address);
    if (j.master) t.is(l.master, v.ipJson.find((x: any) => x.ifname === j.master).ifindex);
  }
});

test('writer: nested lengths, alignment and string NUL termination round-trip', (t) => {
  const w = new MessageWriter(C.RTM_NEWLINK, C.NLM_F_ACK);
  w.struct(ifinfomsg(3));
  w.str(C.IFLA_IFNAME, 'abc');
  w.nest(C.IFLA_LINKINFO, () => { w.str(C.IFLA_INFO_KIND, 'bridge'); w.nest(C.IFLA_INFO_DATA, () => w.u8(C.IFLA_BR_VLAN_FILTERING, 1)); });
  w.u32(C.IFLA_MTU, 9000);
  const m = encoded(w);
  t.is(m.payload.length % 4, 0);
  const a = attrs(m.payload, 16);
  t.is(a.str(C.IFLA_IFNAME), 'abc');
  t.is(a.get(C.IFLA_IFNAME)!.length, 4);
  t.is(a.nested(C.IFLA_LINKINFO)!.nested(C.IFLA_INFO_DATA)!.u8(C.IFLA_BR_VLAN_FILTERING), 1);
  t.is(a.u32(C.IFLA_MTU), 9000);
  t.is(m.seq, 7);
  t.is(m.flags & C.NLM_F_REQUEST, C.NLM_F_REQUEST);
});

test('parseMessages rejects a truncated message instead of misreading it', (t) => {
  const good = Buffer.from(new MessageWriter(C.RTM_GETLINK, C.NLM_F_ACK).struct(ifinfomsg()).finish(1));
  t.throws(() => parseMessages(good.subarray(0, good.length - 4)), { instanceOf: RangeError });
});

test('MessageWriter: an attribute that outgrows the buffer lands in the grown one (bytes and integers)', async (t) => {
  const { MessageWriter } = await import('../../lib/netlink/wire.js');
  const w = new MessageWriter(16, 0, 20);
  w.bytes(1, Buffer.alloc(40, 0xab)).u32(2, 0xdeadbeef).u8(3, 7);
  const msg = Buffer.from(w.finish(1));
  t.is(msg.readUInt32LE(0), msg.length);
  t.true(msg.subarray(20, 60).every((b) => b === 0xab), 'the 40 bytes are in the message');
  t.is(msg.readUInt32LE(64), 0xdeadbeef);
  t.is(msg.readUInt8(72), 7);
});

test('device groups: deletion and network groups never meet each other or the operator\'s range; a group delete carries only IFLA_GROUP', async (t) => {
  const { deletionGroup, networkGroup } = await import('../../lib/netlink/devgroups.js');
  const { encodeDelLinkGroup } = await import('../../lib/netlink/link.js');
  for (const i of [1, 2, 4242, 0x3fffffff, 0x7fffffff]) {
    const g = deletionGroup(i);
    t.true(g >= 0x80000000 && g < 0xc0000000, `deletion group of ${i}: ${g.toString(16)}`);
  }
  t.not(deletionGroup(1), deletionGroup(2));
  for (const h of [0, 1, 0x3fffffff, 0x40000000, 0xffffffff]) {
    const g = networkGroup(h);
    t.true(g >= 0xc0000000 && g <= 0xffffffff, `network group of ${h.toString(16)}: ${g.toString(16)}`);
  }
  const m = encoded(encodeDelLinkGroup(0x80000005));
  t.is(m.type, C.RTM_DELLINK);
  t.is(m.payload.readInt32LE(4), 0, 'no ifindex: the group selects');
  t.is(attrs(m.payload, 16).u32(C.IFLA_GROUP), 0x80000005);
});
