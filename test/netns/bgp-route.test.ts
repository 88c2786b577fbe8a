import test from 'ava';
import { writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { parseNetworkList, type NetworkList } from '../../lib/libcni/conf.js';
import { execPlugin } from '../../lib/libcni/exec.js';
import { PluginFailure } from '../../lib/libcni/runtime.js';
import { connect, echo, ping, withServer } from '../../conformance/cases/dataplane.js';
import { startEtcd } from '../../conformance/etcd.js';
import { diffSnapshots, snapshot } from '../../conformance/kernel.js';
import { Lab, type Container } from '../../conformance/lab.js';
import { Allocator } from '../../ipam/allocator.js';
import { parseIpamConfig } from '../../ipam/config.js';
import { openStore } from '../../ipam/store.js';
import type { NetConf, Result } from '../../lib/cni/types.js';
import { cidrContains, formatCIDR, formatIP, ipEqual, parseCIDR, parseIP, type Family } from '../../lib/ip/addr.js';
import { formatMAC, parseMAC } from '../../lib/ip/mac.js';
import * as C from '../../lib/netlink/constants.js';
import { Netlink } from '../../lib/netlink/handle.js';
import { inNetns } from '../../lib/netns/netns.js';
import { sysctlGet } from '../../lib/netns/sysctl.js';
import { eui64LinkLocal } from '../../plugins/bgp-route/plan.js';
import { hostVethName } from '../../plugins/common/names.js';
import { RTPROT_TETHER_POD } from '../../lib/route-protocols.js';

// tether-bgp-route on one node: every lab is a throwaway host namespace (the "node") whose names start
// with tl3; it has no default route unless a test adds one.
const dist = fileURLToPath(new URL('../../../dist/bin/', import.meta.url));
const labs: Lab[] = [];
test.after.always('every lab is removed, and nothing with its names is left', (t) => {
  for (const l of labs) l.close();
  t.deepEqual(labs.flatMap((l) => l.leftovers()), []);
});

const ipam = (subnets: string[], extra: Record<string, unknown> = {}) => ({ type: 'tether-ipam', ranges: subnets.map((s) => [{ subnet: s }]), ...extra });

function network(name: string, plugin: Record<string, unknown>): NetworkList {
  return parseNetworkList(Buffer.from(JSON.stringify({ cniVersion: '1.1.0', name, plugins: [{ type: 'tether-bgp-route', ...plugin }] })));
}

function lab(list: NetworkList): Lab {
  const l = new Lab(list, [dist], 30_000, 'tl3');
  labs.push(l);
  return l;
}

const addressOf = (r: Result, f: Family) => r.ips!.map((i) => parseCIDR(i.address)!).find((c) => c.ip.family === f)!;
const ipOf = (r: Result, f: Family) => formatIP(addressOf(r, f).ip);
const hostEnd = (c: Container) => hostVethName(c.id, 'eth0', 'tgr');

/** Every problem with traffic between the two namespaces over ip (served in serverNs): ICMP, TCP, UDP. */
async function reach(clientNs: string, serverNs: string, ip: string): Promise<string[]> {
  return [await ping(clientNs, ip), ...(await echo(serverNs, clientNs, ip))].filter((p): p is string => !!p);
}

function hostHasRouteCovering(l: Lab, ip: string): boolean {
  const want = parseIP(ip)!;
  return Netlink.within(l.host, (nl) => nl.routes(want.family).some((r) => r.type === C.RTN_UNICAST && (!r.dst || cidrContains(r.dst, want))));
}

test('two pods on a node with no default route reach each other and the node (ICMP, TCP, UDP); the kernel holds the L3 layout', async (t) => {
  const l = lab(network('l3two', { ipam: ipam(['10.61.0.0/16']) }));
  const node = l.newOutside(); // gives the node an address, 198.18.x.1, and nothing else: no default route
  t.false(hostHasRouteCovering(l, '169.254.1.1'), 'the node has no route covering 169.254.1.1: proxy ARP alone could not answer');
  const a = l.newContainer();
  const b = l.newContainer();
  const ra = await l.attach(a);
  const rb = await l.attach(b);
  t.is(ra.ips![0].address.split('/')[1], '32');
  t.is(ra.ips![0].gateway, '169.254.1.1');
  t.deepEqual(ra.routes, [{ dst: '0.0.0.0/0', gw: '169.254.1.1' }]);
  t.deepEqual(ra.interfaces!.map((i) => [i.name, i.sandbox]), [[hostEnd(a), undefined], ['eth0', a.path]]);
  t.is(ra.interfaces![0].mac, 'ee:ee:ee:ee:ee:ee');

  t.deepEqual(await reach(a.path, b.path, ipOf(rb, 4)), [], 'a -> b');
  t.deepEqual(await reach(b.path, a.path, ipOf(ra, 4)), [], 'b -> a');
  for (const c of [a, b]) t.deepEqual(await reach(c.path, l.host, node.hostIP), [], `${c.name} -> the node's ${node.hostIP}`);

  // The container: /32, the on-link route, the default via 169.254.1.1, a static entry for it.
  Netlink.within(a.path, (ctr) => {
    const eth0 = ctr.linkByName('eth0')!;
    t.deepEqual(ctr.addrs({ family: 4, index: eth0.index }).map((x) => formatCIDR(x.cidr)), [ra.ips![0].address]);
    const routes = ctr.routes(4).map((r) => `${r.dst ? formatCIDR(r.dst) : 'default'}${r.gateway ? ` via ${formatIP(r.gateway)}` : ''} scope ${r.scope}`);
    t.true(routes.includes(`169.254.1.1/32 scope ${C.RT_SCOPE_LINK}`), routes.join(', '));
    t.true(routes.includes(`default via 169.254.1.1 scope ${C.RT_SCOPE_UNIVERSE}`), routes.join(', '));
    const gw = ctr.neighbors(C.AF_INET, eth0.index).find((n) => n.ip && formatIP(n.ip) === '169.254.1.1');
    t.is(gw?.state, C.NUD_PERMANENT);
    t.is(gw?.mac && formatMAC(gw.mac), 'ee:ee:ee:ee:ee:ee');
  });

  // The host: no bridge, no address on the host end, the fixed MAC, a /32 route and a static entry.
  Netlink.within(l.host, (nl) => {
    t.deepEqual(nl.links({ kind: 'bridge' }), [], 'no bridge');
    const h = nl.linkByName(hostEnd(a))!;
    t.is(h.mac, 'ee:ee:ee:ee:ee:ee');
    t.deepEqual(nl.addrs({ family: 4, index: h.index }), [], 'no IPv4 address on the host end');
    const route = nl.routes(4, { oif: h.index }).find((r) => r.dst && ipEqual(r.dst.ip, addressOf(ra, 4).ip));
    t.is(route?.dst?.prefix, 32);
    t.is(route?.scope, C.RT_SCOPE_LINK);
    t.is(route?.protocol, RTPROT_TETHER_POD, `marked for the node agent (proto ${RTPROT_TETHER_POD})`);
    const n = nl.neighbors(C.AF_INET, h.index).find((x) => x.ip && ipEqual(x.ip, addressOf(ra, 4).ip));
    t.is(n?.state, C.NUD_PERMANENT);
    t.is(n?.mac && formatMAC(n.mac), ra.interfaces![1].mac);
  });
  inNetns(l.host, () => {
    const name = hostEnd(a);
    for (const [key, want] of [[`net/ipv4/conf/${name}/proxy_arp`, '1'], [`net/ipv4/neigh/${name}/proxy_delay`, '0'], [`net/ipv4/conf/${name}/forwarding`, '1'], ['net/ipv4/ip_forward', '1']]) {
      t.is(sysctlGet(key), want, key);
    }
  });
  await l.runtime.check(l.list, l.spec(a));
  await l.detach(a);
  await l.detach(b);
});

test('the proxy-ARP pitfall: without the static entry a pod cannot resolve 169.254.1.1 while the node has no default route; proxy ARP answers once it has one', async (t) => {
  const l = lab(network('l3parp', { ipam: ipam(['10.62.0.0/16']) }));
  const node = l.newOutside();
  const a = l.newContainer();
  await l.attach(a);
  t.deepEqual(await reach(a.path, l.host, node.hostIP), [], 'with the static entry');
  const neighbour = () => {
    return Netlink.within(a.path, (nl) => {
      const eth0 = nl.linkByName('eth0')!.index;
      return { entry: nl.neighbors(C.AF_INET, eth0).find((n) => n.ip && formatIP(n.ip) === '169.254.1.1'), eth0 };
    });
  };
  Netlink.within(a.path, (ctr) => { t.true(ctr.neighDel({ family: C.AF_INET, index: neighbour().eth0, ip: parseIP('169.254.1.1')!, state: 0, flags: 0 })); });
  t.truthy(await ping(a.path, node.hostIP), 'without the entry and without a default route on the node, the gateway does not resolve');
  const failed = neighbour().entry;
  t.true(!failed?.mac || (failed.state & (C.NUD_FAILED | C.NUD_INCOMPLETE)) !== 0, `entry: ${JSON.stringify(failed)}`);
  // Give the node a default route (out of another interface): now proxy ARP answers for 169.254.1.1.
  Netlink.within(l.host, (nl) => { nl.routeAdd({ family: 4, dst: null, gateway: parseIP(node.outsideIP)! }); });
  let problem: string | null = 'not tried';
  for (let i = 0; i < 5 && problem; i++) problem = await ping(a.path, node.hostIP);
  t.is(problem, null, 'with a default route on the node, proxy ARP resolves the gateway');
  const learned = neighbour().entry;
  t.is(learned?.mac && formatMAC(learned.mac), 'ee:ee:ee:ee:ee:ee');
  t.is((learned!.state & C.NUD_PERMANENT), 0, 'learned by ARP this time, not static');
  await l.detach(a);
});

test('a host outside the node, routed to it, reaches pods and pods reach it, each seen with its own address (pure L3, no NAT), IPv4 and IPv6', async (t) => {
  const l = lab(network('l3out', { ipam: ipam(['10.63.0.0/16', 'fd63::/64']) }));
  const out = l.newOutside();
  Netlink.within(out.path, (o) => {
    o.routeAdd({ family: 4, dst: parseCIDR('10.63.0.0/16')!, gateway: parseIP(out.hostIP)! });
    o.routeAdd({ family: 6, dst: parseCIDR('fd63::/64')!, gateway: parseIP(out.hostIP6)! });
  });
  const a = l.newContainer();
  const r = await l.attach(a);
  for (const [f, outsideIP] of [[4, out.outsideIP], [6, out.outsideIP6]] as const) {
    const pod = ipOf(r, f);
    t.deepEqual(await reach(out.path, a.path, pod), [], `outside -> pod ${pod}`);
    t.deepEqual(await reach(a.path, out.path, outsideIP), [], `pod -> outside ${outsideIP}`);
    // The pod serves and answers with the address it saw: the outside host's own, nothing rewritten.
    await withServer(a.path, pod, ['--reply', 'peer'], async () => {
      for (const proto of ['tcp', 'udp'] as const) {
        const res = await connect(out.path, proto, pod, ['--print']);
        t.is(res.status, 0, res.stdout);
        t.is(res.stdout.trim().replace(/^got peer /, '').replace(/^::ffff:/, ''), outsideIP, `${proto}: the pod saw the outside host's own address`);
      }
    });
  }
  await l.detach(a);
});

test('IPv6 only and dual stack: /128 addresses, the host end\'s link-local as gateway with a static entry, pods and node reachable', async (t) => {
  for (const subnets of [['fd64::/64'], ['10.64.0.0/16', 'fd65::/64']]) {
    const l = lab(network(`l3v6${subnets.length}`, { ipam: ipam(subnets) }));
    const node = l.newOutside();
    const a = l.newContainer();
    const b = l.newContainer();
    const ra = await l.attach(a);
    const rb = await l.attach(b);
    const v6 = ra.ips!.find((i) => i.address.includes(':'))!;
    t.regex(v6.address, /\/128$/);
    t.is(v6.gateway, 'fe80::ecee:eeff:feee:eeee');
    t.true(ra.routes!.some((x) => x.dst === '::/0' && x.gw === 'fe80::ecee:eeff:feee:eeee'));
    t.is(ra.ips!.length, subnets.length);
    for (const f of subnets.length === 2 ? [4, 6] as Family[] : [6] as Family[]) {
      t.deepEqual(await reach(a.path, b.path, ipOf(rb, f)), [], `IPv${f} a -> b`);
      t.deepEqual(await reach(b.path, a.path, ipOf(ra, f)), [], `IPv${f} b -> a`);
      t.deepEqual(await reach(a.path, l.host, f === 4 ? node.hostIP : node.hostIP6), [], `IPv${f} a -> node`);
    }
    Netlink.within(a.path, (ctr) => {
      const eth0 = ctr.linkByName('eth0')!.index;
      const gw = ctr.neighbors(C.AF_INET6, eth0).find((n) => n.ip && formatIP(n.ip) === 'fe80::ecee:eeff:feee:eeee');
      t.is(gw?.state, C.NUD_PERMANENT);
      t.true(ctr.routes(6).some((r) => !r.dst && r.gateway && formatIP(r.gateway) === 'fe80::ecee:eeff:feee:eeee' && r.oif === eth0));
    });
    Netlink.within(l.host, (nl) => {
      const h = nl.linkByName(hostEnd(a))!;
      const ll = nl.addrs({ family: 6, index: h.index }).map((x) => formatCIDR(x.cidr));
      t.deepEqual(ll, ['fe80::ecee:eeff:feee:eeee/64'], 'the host end holds the gateway, derived from its fixed MAC; nothing else');
      t.true(nl.routes(6, { oif: h.index }).some((r) => r.dst?.prefix === 128 && ipEqual(r.dst.ip, addressOf(ra, 6).ip)));
    });
    inNetns(l.host, () => {
      for (const key of ['proxy_ndp', 'forwarding']) t.is(sysctlGet(`net/ipv6/conf/${hostEnd(a)}/${key}`), '1', key);
      for (const key of ['accept_ra', 'accept_dad']) t.is(sysctlGet(`net/ipv6/conf/${hostEnd(a)}/${key}`), '0', key);
    });
    await l.runtime.check(l.list, l.spec(a));
    await l.detach(a);
    await l.detach(b);
  }
});

test('IPv6 on a node whose links default to stable-privacy addresses: the host end still holds fe80::ecee:eeff:feee:eeee', async (t) => {
  const l = lab(network('l3priv', { ipam: ipam(['fd67::/64']) }));
  inNetns(l.host, () => { writeFileSync('/proc/sys/net/ipv6/conf/default/addr_gen_mode', '3'); });
  const node = l.newOutside();
  const a = l.newContainer();
  await l.attach(a);
  Netlink.within(l.host, (nl) => {
    const h = nl.linkByName(hostEnd(a))!;
    t.deepEqual(nl.addrs({ family: 6, index: h.index }).map((x) => formatCIDR(x.cidr)), ['fe80::ecee:eeff:feee:eeee/64']);
    // The control: the lab's own link, made after the default changed, got a random link-local, not its EUI-64.
    const uplink = nl.linkByName(`${l.prefix}o`)!;
    const ll = nl.addrs({ family: 6, index: uplink.index }).filter((x) => formatIP(x.cidr.ip).startsWith('fe80')).map((x) => formatIP(x.cidr.ip));
    t.is(ll.length, 1);
    t.not(ll[0], formatIP(eui64LinkLocal(parseMAC(uplink.mac)!)));
  });
  t.deepEqual(await reach(a.path, l.host, node.hostIP6), []);
  await l.runtime.check(l.list, l.spec(a));
  await l.detach(a);
});

test('DEL leaves nothing (no veth, no host route, no reservation); DEL twice, DEL with the namespace gone and with an empty CNI_NETNS succeed', async (t) => {
  const l = lab(network('l3del', { ipam: ipam(['10.66.0.0/16', 'fd66::/64']) }));
  const before = snapshot(l.host);
  const a = l.newContainer();
  const r = await l.attach(a);
  t.true(diffSnapshots(before, snapshot(l.host)).some((d) => d.includes(`${ipOf(r, 4)}/32 dev ${hostEnd(a)}`)), 'ADD made the host route');
  await l.detach(a);
  t.deepEqual(diffSnapshots(before, snapshot(l.host)), [], 'no veth, no route left on the node');
  t.deepEqual(await l.reservations(), []);
  Netlink.within(a.path, (ctr) => { t.is(ctr.linkByName('eth0'), null); });
  await l.detach(a);

  const b = l.newContainer();
  await l.attach(b);
  l.removeContainer(b);
  await l.detach(b);
  t.deepEqual(diffSnapshots(before, snapshot(l.host)), [], 'namespace gone: the host end found by its name and removed');
  t.deepEqual(await l.reservations(), []);

  const c = l.newContainer();
  await l.attach(c);
  await l.runtime.del(l.list, { ...l.spec(c), netns: '' });
  t.deepEqual(diffSnapshots(before, snapshot(l.host)), [], 'empty CNI_NETNS: the host end removed (the container end goes with it)');
  t.deepEqual(await l.reservations(), []);
});

/** ADD with a crafted config straight to the plugin in the lab's node; returns the parsed error or result. */
async function rawAdd(l: Lab, c: Container, conf: Record<string, unknown>) {
  const out = await execPlugin({
    file: `${dist}tether-bgp-route`, stdin: JSON.stringify({ cniVersion: '1.1.0', name: l.list.name, type: 'tether-bgp-route', ...conf }),
    env: { ...process.env, CNI_COMMAND: 'ADD', CNI_CONTAINERID: c.id, CNI_NETNS: c.path, CNI_IFNAME: 'eth0', CNI_PATH: dist }, timeoutMs: 20_000, netns: l.host,
  });
  return { status: out.status, json: out.stdout ? JSON.parse(out.stdout) : undefined };
}

test('bad config: code 7 naming the field, code 2 for what a routed link cannot do, and nothing created', async (t) => {
  const l = lab(network('l3bad', { ipam: ipam(['10.67.0.0/16']) }));
  const before = snapshot(l.host);
  const good = ipam(['10.67.0.0/16'], { dataDir: l.ipamDataDir });
  const cases: [Record<string, unknown>, number, RegExp][] = [
    [{}, 7, /"ipam" is required/],
    [{ ipam: { ranges: [] } }, 7, /"ipam.type" is required/],
    [{ mtu: 10, ipam: good }, 7, /"mtu" must be an integer from 68 to 65535/],
    [{ ipMasq: true, ipam: good }, 2, /"ipMasq".*does not masquerade/],
    [{ bridge: 'cni0', ipam: good }, 2, /"bridge".*no bridge/],
    [{ dns: 'x', ipam: good }, 7, /"dns" must be an object/],
    [{ ipam: { type: 'tether-ipam', dataDir: l.ipamDataDir, ranges: [[{ subnet: '10.67.0.1/16' }]] } }, 7, /host bits/],
  ];
  for (const [conf, code, re] of cases) {
    const c = l.newContainer();
    const r = await rawAdd(l, c, conf);
    t.is(r.status, 1, JSON.stringify(conf));
    t.is(r.json.code, code, `${JSON.stringify(conf)}: ${r.json.msg}`);
    t.regex(r.json.msg, re);
    Netlink.within(c.path, (ctr) => { t.is(ctr.linkByName('eth0'), null); });
  }
  t.deepEqual(diffSnapshots(before, snapshot(l.host)), []);
  t.deepEqual(await l.reservations(), []);
});

test('a failure after IPAM rolls back everything: an IPAM route through an unreachable gateway, and a host route already taken', async (t) => {
  const l = lab(network('l3roll', { ipam: ipam(['10.68.0.0/16'], { routes: [{ dst: '10.99.0.0/16', gw: '10.68.255.254' }] }) }));
  const before = snapshot(l.host);
  const a = l.newContainer();
  const e = await t.throwsAsync(l.attach(a), { instanceOf: PluginFailure });
  t.regex(e!.message, /cannot add the route 10\.99\.0\.0\/16 via 10\.68\.255\.254 in the container: .*ENETUNREACH/);
  t.deepEqual(diffSnapshots(before, snapshot(l.host)), [], 'no veth, no route');
  t.deepEqual(await l.reservations(), [], 'the address was released');
  Netlink.within(a.path, (ctr) => { t.is(ctr.linkByName('eth0'), null); });

  // The only address of a tiny range already has a route on the node (through the outside link).
  const tiny = l.variant('tiny', (p) => ({ ...p, ipam: { ...(p.ipam as object), routes: [], ranges: [[{ subnet: '10.68.0.0/24', rangeStart: '10.68.0.7', rangeEnd: '10.68.0.7' }]] } }));
  const out = l.newOutside();
  Netlink.within(l.host, (nl) => {
    const uplink = nl.linkByName(`${l.prefix}o`)!;
    nl.routeAdd({ family: 4, dst: parseCIDR('10.68.0.7/32')!, gateway: parseIP(out.outsideIP)!, oif: uplink.index });
  });
  const taken = snapshot(l.host);
  const b = l.newContainer();
  const e2 = await t.throwsAsync(l.attach(b, tiny), { instanceOf: PluginFailure });
  t.regex(e2!.message, new RegExp(`already has a route to 10\\.68\\.0\\.7/32 \\(via ${l.prefix}o\\)`));
  t.deepEqual(diffSnapshots(taken, snapshot(l.host)), [], 'the veth is gone and the existing route untouched');
  t.deepEqual(await l.reservations(tiny.name), [], 'the address was released');
});

test('CHECK passes after ADD and lists every difference (code 100): a deleted host route, a lost gateway entry, a changed host MAC', async (t) => {
  const l = lab(network('l3chk', { ipam: ipam(['10.69.0.0/16', 'fd69::/64']) }));
  const a = l.newContainer();
  const r = await l.attach(a);
  await l.runtime.check(l.list, l.spec(a));
  Netlink.within(l.host, (nl) => {
    const h = nl.linkByName(hostEnd(a))!;
    t.true(nl.routeDel({ family: 4, dst: { ip: addressOf(r, 4).ip, prefix: 32 }, oif: h.index }));
  });
  const e = await t.throwsAsync(l.runtime.check(l.list, l.spec(a)), { instanceOf: PluginFailure });
  t.is(e!.code, 100);
  t.regex(e!.message, new RegExp(`host route ${ipOf(r, 4).replace(/\./g, '\\.')}/32 dev ${hostEnd(a)} is missing`));
  Netlink.within(a.path, (ctr) => { t.true(ctr.neighDel({ family: C.AF_INET6, index: ctr.linkByName('eth0')!.index, ip: parseIP('fe80::ecee:eeff:feee:eeee')!, state: 0, flags: 0 })); });
  Netlink.within(l.host, (nl2) => { nl2.linkSet(nl2.linkByName(hostEnd(a))!.index, { mac: parseMAC('02:00:00:00:69:69')! }); });
  const e2 = await t.throwsAsync(l.runtime.check(l.list, l.spec(a)), { instanceOf: PluginFailure });
  t.is(e2!.code, 100);
  for (const re of [/host route .* is missing/, /neighbour entry fe80::ecee:eeff:feee:eeee -> ee:ee:ee:ee:ee:ee on eth0 is missing/, /has MAC 02:00:00:00:69:69, not ee:ee:ee:ee:ee:ee/]) t.regex(e2!.message, re);
  await l.detach(a);
  t.deepEqual(await l.reservations(), []);
});

/** An allocator on the lab's IPAM store as another node would use it. */
function nodeAllocator(l: Lab, nodeName: string): { alloc: Allocator; close(): void } {
  const plugin = l.list.plugins[0];
  const cfg = parseIpamConfig({ ...plugin, name: l.list.name, cniVersion: l.list.cniVersion, ipam: { ...(plugin.ipam as object), nodeName } } as unknown as NetConf);
  const kv = openStore(cfg);
  return { alloc: new Allocator(kv, cfg), close: () => kv.close() };
}

test('a borrowed address (from another node\'s block) is routed exactly like an own one', async (t) => {
  // One /28 block in the pool: the other node claims it, so this node can only borrow.
  const l = lab(network('l3borrow', { ipam: ipam(['10.70.0.0/28'], { blockSize: 28, nodeName: 'this-node' }) }));
  const other = nodeAllocator(l, 'other-node');
  try {
    await other.alloc.allocate({ containerID: 'elsewhere', ifname: 'eth0' });
    const node = l.newOutside();
    const a = l.newContainer();
    const r = await l.attach(a);
    const blocks = await other.alloc.blockInfo();
    const owner = blocks.find((b) => cidrContains(parseCIDR(b.cidr)!, addressOf(r, 4).ip))?.node;
    t.is(owner, 'other-node', 'the address comes from the other node\'s block');
    Netlink.within(l.host, (nl) => {
      t.true(nl.routes(4, { oif: nl.linkByName(hostEnd(a))!.index }).some((x) => x.dst?.prefix === 32 && ipEqual(x.dst.ip, addressOf(r, 4).ip)), 'its /32 host route');
    });
    t.deepEqual(await reach(a.path, l.host, node.hostIP), []);
    await l.runtime.check(l.list, l.spec(a));
    await l.detach(a);
    t.deepEqual((await l.reservations())!.length, 1, 'only the other node\'s address is left');
  } finally { other.close(); }
});

test('IPAM in etcd: the same plugin, ADD, traffic, CHECK, DEL; STATUS and GC reach IPAM', async (t) => {
  const etcd = await startEtcd({ unix: true });
  try {
    const l = lab(network('l3etcd', { ipam: ipam(['10.71.0.0/16'], { etcd: { endpoints: [etcd.endpoint], prefix: `/l3${process.pid}` } }) }));
    const a = l.newContainer();
    const b = l.newContainer();
    const ra = await l.attach(a);
    await l.attach(b);
    t.deepEqual(await reach(b.path, a.path, ipOf(ra, 4)), []);
    await l.runtime.check(l.list, l.spec(a));
    await l.runtime.status(l.list);
    // GC straight to the plugin, only b valid: a's address goes, b's stays.
    const out = await execPlugin({
      file: `${dist}tether-bgp-route`, netns: l.host, timeoutMs: 20_000,
      stdin: l.runtime.pluginConfig(l.list, l.list.plugins[0], '1.1.0', { gc: [{ containerID: b.id, ifname: 'eth0' }] }),
      env: { ...process.env, CNI_COMMAND: 'GC', CNI_PATH: dist },
    });
    t.is(out.status, 0, out.stdout);
    t.is((await l.reservations())!.length, 1);
    await l.detach(a);
    await l.detach(b);
    t.deepEqual(await l.reservations(), []);
  } finally { await etcd.stop(); }
});
