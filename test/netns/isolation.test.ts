import test from 'ava';
import type { ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { parseNetworkList, type NetworkList } from '../../lib/libcni/conf.js';
import { PluginFailure } from '../../lib/libcni/runtime.js';
import { Lab, type Container } from '../../conformance/lab.js';
import { runIn, startIn, stop, waitForLine } from '../../conformance/spawn.js';
import { parseCIDR, parseIP } from '../../lib/ip/addr.js';
import { Netlink } from '../../lib/netlink/handle.js';
import { nftGetTable, NFPROTO_INET } from '../../lib/netlink/nftables.js';
import { inNetns } from '../../lib/netns/netns.js';
import { masqTableName } from '../../plugins/bridge/masq.js';
import { ensureIsolation, ISOLATION_TABLE, isolationGroup, removeIsolation, syncForeignSpans, type IsolationMember } from '../../plugins/common/isolation.js';
import { NETLINK_NETFILTER } from '../../lib/netlink/constants.js';
import { NFT_SET_ELEM_INTERVAL_END, nftListElements } from '../../lib/netlink/nft-set.js';
import { NetlinkSocket } from '../../lib/netlink/socket.js';
import { formatIP, ipFromBytes } from '../../lib/ip/addr.js';

// Isolation between tether networks on one host, internal networks and icc off, with real traffic.
const dist = fileURLToPath(new URL('../../../dist/bin/', import.meta.url));
const tether = `${dist}tether`;
const labs: Lab[] = [];
const servers: ChildProcess[] = [];
test.after.always(() => { for (const s of servers) stop(s); for (const l of labs) l.close(); });

function net(name: string, subnet: string, extra: Record<string, unknown> = {}): NetworkList {
  return parseNetworkList(Buffer.from(JSON.stringify({
    cniVersion: '1.1.0', name,
    plugins: [{ type: 'tether-bridge', bridge: `b${name}`, isDefaultGateway: true, capabilities: { portMappings: true }, ipMasq: true, ipam: { type: 'tether-ipam', ranges: [[{ subnet }]] }, ...extra }],
  })));
}

/** A lab (host namespace) whose first network is `first`; more networks attach in the same host. */
function lab(first: NetworkList): Lab {
  const l = new Lab(first, [dist, '/usr/lib/cni']);
  labs.push(l);
  return l;
}

/** A pod on `list` with an echo server on port 80 (both families); returns its namespace and addresses. */
async function pod(l: Lab, list: NetworkList, portMappings?: unknown[]): Promise<{ c: Container; ip: string; ip6?: string }> {
  const c = l.newContainer();
  const r = await l.runtime.add(list, { ...l.spec(c), ...(portMappings ? { capabilityArgs: { portMappings } } : {}) });
  const s = startIn(c.path, tether, ['probe', 'serve', '--ip', '::', '--port', '80', '--seconds', '300']);
  servers.push(s);
  await waitForLine(s, 'ready', 20_000);
  const addr = (f: string) => r.ips!.map((i) => i.address.split('/')[0]).find((a) => a.includes(':') === (f === '6'));
  return { c, ip: addr('4')!, ip6: addr('6') };
}

/** Packets the isolation rules refused so far in the lab's host (their counters), to tell a refusal from any other failure. */
async function refused(l: Lab): Promise<number> {
  const r = await runIn(l.host, '/usr/sbin/nft', ['-j', 'list', 'chain', 'inet', 'tether_isolation', 'forward']);
  const rules = (JSON.parse(r.stdout) as { nftables: { rule?: { expr: { counter?: { packets: number } }[] } }[] }).nftables;
  return rules.flatMap((x) => x.rule?.expr ?? []).reduce((n, e) => n + (e.counter?.packets ?? 0), 0);
}

/** A probe that must fail because the isolation rules refused it (their counters moved). */
async function assertRefused(t: { regex: (s: string, r: RegExp, m: string) => void; true: (v: boolean, m: string) => void }, l: Lab, ns: string, ip: string, what: string) {
  const before = await refused(l);
  t.regex(await probe(ns, ip), /^fail /, what);
  t.true(await refused(l) > before, `${what}: refused by the isolation rules`);
}

async function probe(ns: string, ip: string, port = 80): Promise<string> {
  const r = await runIn(ns, tether, ['probe', 'connect', '--proto', 'tcp', '--ip', ip, '--port', String(port), '--timeout-ms', '8000'], 20_000);
  return r.stdout.trim() || `fail (exit ${r.status}) ${r.stderr.trim()}`;
}

test('two tether networks cannot reach each other (refused at once, both ways) unless one allows the other\'s bridge', async (t) => {
  const a = net('isoa', '10.91.0.0/24');
  const l = lab(a);
  const b = l.variant('b', (p) => ({ ...p, bridge: 'bisob', ipam: { ...(p.ipam as object), ranges: [[{ subnet: '10.92.0.0/24' }]] } }));
  const a1 = await pod(l, l.list);
  const a2 = await pod(l, l.list);
  const b1 = await pod(l, b);
  t.regex(await probe(a1.c.path, a2.ip), /^ok /, 'same network');
  await assertRefused(t, l, a1.c.path, b1.ip, 'a -> b');
  await assertRefused(t, l, b1.c.path, a1.ip, 'b -> a');
  // A third network that allows a's bridge: both ways open between those two only.
  const c = l.variant('c', (p) => ({ ...p, bridge: 'bisoc', allowBridges: ['bisoa'], ipam: { ...(p.ipam as object), ranges: [[{ subnet: '10.93.0.0/24' }]] } }));
  const c1 = await pod(l, c);
  t.regex(await probe(c1.c.path, a1.ip), /^ok /, 'c -> a allowed');
  t.regex(await probe(a1.c.path, c1.ip), /^ok /, 'a -> c allowed');
  await assertRefused(t, l, c1.c.path, b1.ip, 'c -> b');
  // A published port answers from every network: b reaches a's pod through the host's address.
  await pod(l, l.list, [{ hostPort: 8080, containerPort: 80 }]);
  t.regex(await probe(b1.c.path, '10.92.0.1', 8080), /^ok /, 'b -> a published port, through the host');
  // The host still reaches every network.
  t.regex(await probe(l.host, b1.ip), /^ok /, 'host -> b');
});

test('internal: no default route, no masquerade, nothing forwarded in or out; pods and the host still talk to it', async (t) => {
  const l = lab(net('isoi', '10.94.0.0/24', { internal: true }));
  const out = l.newOutside();
  const i1 = await pod(l, l.list);
  const i2 = await pod(l, l.list);
  const routes = Netlink.within(i1.c.path, (nl) => nl.routes(4));
  t.false(routes.some((r) => r.dst === null || r.dst?.prefix === 0), 'no default route in the pod');
  t.is(inNetns(l.host, () => nftGetTable(NFPROTO_INET, masqTableName('isoi'))), null, 'no masquerade table');
  t.regex(await probe(i1.c.path, out.outsideIP), /^fail /, 'pod -> another host: no route');
  t.regex(await probe(i1.c.path, i2.ip), /^ok /, 'pod -> pod on the network');
  t.regex(await probe(l.host, i1.ip), /^ok /, 'host -> pod');
  // Even a host that routes to the pods through this node is refused.
  Netlink.within(out.path, (nl) => nl.routeAdd({ family: 4, dst: parseCIDR('10.94.0.0/24')!, gateway: parseIP(out.hostIP)! }));
  await assertRefused(t, l, out.path, i1.ip, 'another host -> pod');
  // And the pod, given a default route by hand, still cannot leave.
  Netlink.within(i1.c.path, (nl) => nl.routeAdd({ family: 4, dst: null, gateway: parseIP('10.94.0.1')! }));
  await assertRefused(t, l, i1.c.path, out.outsideIP, 'pod with a default route -> another host');
});

test('icc false: containers on one bridge cannot talk, bridged or routed; each still reaches the host and the outside', async (t) => {
  const l = lab(net('isoc', '10.95.0.0/24', { icc: false }));
  const out = l.newOutside();
  const s = startIn(out.path, tether, ['probe', 'serve', '--ip', out.outsideIP, '--port', '80', '--seconds', '300']);
  servers.push(s);
  await waitForLine(s, 'ready', 20_000);
  const n1 = await pod(l, l.list);
  const n2 = await pod(l, l.list);
  // Bridged traffic stops at the isolated ports (the neighbour never answers); routed traffic at the rules.
  t.regex(await probe(n1.c.path, n2.ip), /^fail /, 'n1 -> n2 blocked');
  t.regex(await probe(n2.c.path, n1.ip), /^fail /, 'n2 -> n1 blocked');
  const isolated = Netlink.within(l.host, (nl) => nl.links().filter((k) => k.master === nl.linkByName('bisoc')!.index).map((k) => k.bridgePort?.isolated));
  t.deepEqual(isolated, [true, true], 'both ports isolated');
  Netlink.within(n1.c.path, (nl) => nl.routeAdd({ family: 4, dst: parseCIDR(`${n2.ip}/32`)!, gateway: parseIP('10.95.0.1')! }));
  await assertRefused(t, l, n1.c.path, n2.ip, 'n1 -> n2 through the gateway');
  t.regex(await probe(l.host, n1.ip), /^ok /, 'host -> n1');
  t.regex(await probe(n1.c.path, out.outsideIP), /^ok /, 'n1 -> another host (masqueraded)');
});

/** A routed (tether-bgp-route) network in the lab's host, dual-stack, sharing the lab's IPAM store. */
function routed(l: Lab, suffix: string, n: number, extra: Record<string, unknown> = {}): NetworkList {
  return l.variant(suffix, (p) => ({
    type: 'tether-bgp-route', capabilities: { portMappings: true },
    ipam: { ...(p.ipam as object), ranges: [[{ subnet: `10.${n}.0.0/24` }], [{ subnet: `fd00:${n}::/64` }]] }, ...extra,
  }));
}

test('routed networks (tether-bgp-route) are isolated per network, from each other and from bridges, both ways and in both families; allowNetworks / allowBridges open a pair; "none" takes no part', async (t) => {
  const l = lab(net('isor', '10.101.0.0/24', { ipam: { type: 'tether-ipam', ranges: [[{ subnet: '10.101.0.0/24' }], [{ subnet: 'fd00:101::/64' }]] } }));
  const r1 = routed(l, 'r1', 102);
  const r2 = routed(l, 'r2', 103);
  const a = await pod(l, l.list);
  const x1 = await pod(l, r1);
  const x1b = await pod(l, r1);
  const x2 = await pod(l, r2);
  for (const f of ['ip', 'ip6'] as const) {
    t.regex(await probe(x1.c.path, x1b[f]!), /^ok /, `same routed network (${f})`);
    await assertRefused(t, l, x1.c.path, x2[f]!, `r1 -> r2 (${f})`);
    await assertRefused(t, l, x2.c.path, x1[f]!, `r2 -> r1 (${f})`);
    await assertRefused(t, l, x1.c.path, a[f]!, `r1 -> bridge (${f})`);
    await assertRefused(t, l, a.c.path, x1[f]!, `bridge -> r1 (${f})`);
  }
  // r3 allows r1 (by network name) and the bridge network (by bridge): those pairs open both ways, r2 stays shut.
  const r3 = routed(l, 'r3', 104, { allowNetworks: ['isor-r1'], allowBridges: ['bisor'] });
  const x3 = await pod(l, r3);
  for (const f of ['ip', 'ip6'] as const) {
    t.regex(await probe(x3.c.path, x1[f]!), /^ok /, `r3 -> r1 allowed (${f})`);
    t.regex(await probe(x1.c.path, x3[f]!), /^ok /, `r1 -> r3 allowed (${f})`);
    t.regex(await probe(x3.c.path, a[f]!), /^ok /, `r3 -> bridge allowed (${f})`);
    t.regex(await probe(a.c.path, x3[f]!), /^ok /, `bridge -> r3 allowed (${f})`);
    await assertRefused(t, l, x3.c.path, x2[f]!, `r3 -> r2 (${f})`);
  }
  // A routed network with "isolation": "none" talks to everyone, and everyone to it.
  const r4 = routed(l, 'r4', 105, { isolation: 'none' });
  const x4 = await pod(l, r4);
  for (const f of ['ip', 'ip6'] as const) {
    for (const [from, to, what] of [[x4, x1, 'r4 -> r1'], [x1, x4, 'r1 -> r4'], [x4, a, 'r4 -> bridge'], [a, x4, 'bridge -> r4']] as const) {
      t.regex(await probe(from.c.path, to[f]!), /^ok /, `${what} (${f}), isolation none`);
    }
  }
  // A bridge network allows a routed one by name, from the bridge's side alone.
  const b = l.variant('b', (p) => ({ ...p, bridge: 'bisorb', allowNetworks: ['isor-r2'], ipam: { ...(p.ipam as object), ranges: [[{ subnet: '10.106.0.0/24' }], [{ subnet: 'fd00:106::/64' }]] } }));
  const y = await pod(l, b);
  t.regex(await probe(y.c.path, x2.ip), /^ok /, 'bridge (allowNetworks) -> r2');
  t.regex(await probe(x2.c.path, y.ip), /^ok /, 'r2 -> that bridge');
  await assertRefused(t, l, y.c.path, x1.ip, 'that bridge -> r1, not allowed');
  await assertRefused(t, l, y.c.path, a.ip6!, 'bridge -> bridge (IPv6)');
  await assertRefused(t, l, a.c.path, y.ip6!, 'bridge -> bridge, the other way (IPv6)');
  // A bridge network with "isolation": "none" takes no part either.
  const n = l.variant('n', (p) => ({ ...p, bridge: 'bisorn', isolation: 'none', ipam: { ...(p.ipam as object), ranges: [[{ subnet: '10.107.0.0/24' }], [{ subnet: 'fd00:107::/64' }]] } }));
  const z = await pod(l, n);
  for (const f of ['ip', 'ip6'] as const) {
    for (const [from, to, what] of [[z, a, 'none -> bridge'], [a, z, 'bridge -> none'], [z, x1, 'none -> r1'], [x1, z, 'r1 -> none']] as const) {
      t.regex(await probe(from.c.path, to[f]!), /^ok /, `${what} (${f}), bridge with isolation none`);
    }
  }
  // A published port of a routed pod answers from another network; the host reaches every routed pod.
  const p1 = await pod(l, r1, [{ hostPort: 8080, containerPort: 80 }]);
  t.truthy(p1);
  t.regex(await probe(x2.c.path, '10.101.0.1', 8080), /^ok /, 'r2 -> r1 published port through the host');
  t.regex(await probe(l.host, x1.ip), /^ok /, 'host -> r1');
  t.regex(await probe(l.host, x1.ip6!), /^ok /, 'host -> r1 (IPv6)');
  // CHECK sees the tag: a routed veth (or a bridge) taken out of its network's group fails it.
  const { hostVethName } = await import('../../plugins/common/names.js');
  const { HOST_VETH_PREFIX } = await import('../../plugins/bgp-route/plan.js');
  await t.notThrowsAsync(l.runtime.check(r1, l.spec(x1.c)), 'CHECK passes as ADD left it');
  await t.notThrowsAsync(l.runtime.check(l.list, l.spec(a.c)), 'and for the bridge network');
  Netlink.within(l.host, (nl) => {
    nl.linkSet(nl.linkByName(hostVethName(x1.c.id, 'eth0', HOST_VETH_PREFIX))!.index, { group: 0 });
    nl.linkSet(nl.linkByName('bisor')!.index, { group: 0 });
  });
  for (const [list, c, what] of [[r1, x1.c, 'routed'], [l.list, a.c, 'bridge']] as const) {
    const e = await t.throwsAsync(l.runtime.check(list, l.spec(c)), { instanceOf: PluginFailure }, what);
    t.is(e!.code, 100);
    t.regex(e!.message, /is in device group 0, not the network's isolation group \d+/, what);
  }
});

test('foreign spans (networks across hosts with no member on this node): subnet in "spanned", allowed pairs in "spanpeers"; those no longer foreign go, the node\'s own spans never', (t) => {
  const l = lab(net('isof', '10.95.0.0/24'));
  const members: IsolationMember[] = [{ routed: 'red' }, { routed: 'front' }, { routed: 'blue' }, { routed: 'x' }, { bridge: 'bisof' }];
  const nameOf = new Map(members.map((m) => [isolationGroup(m), 'bridge' in m ? `bridge ${m.bridge}` : m.routed]));
  const ip = (b: Buffer) => formatIP(ipFromBytes(b.subarray(0, 4)));
  const sets = () => inNetns(l.host, () => NetlinkSocket.within(NETLINK_NETFILTER, (s) => {
    const list = (set: string) => nftListElements(s, NFPROTO_INET, ISOLATION_TABLE, set);
    return {
      spanned: list('spanned').map((e) => `${ip(e.key)}${(e.flags ?? 0) & NFT_SET_ELEM_INTERVAL_END ? ' end' : ''}`).sort(),
      spanpeers: list('spanpeers').map((e) => `${ip(e.key)}-${ip(e.keyEnd!)} ${nameOf.get(e.key.readUInt32BE(4))}`).sort(),
    };
  }));
  // This node's own network across hosts, allowed with front.
  const own = ['10.246.0.0/16'];
  inNetns(l.host, () => ensureIsolation({ member: { routed: 'red' }, isolate: true, internal: false, icc: true, allowBridges: [], allowNetworks: ['front'], spans: own }));
  const ownOnly = sets();
  t.deepEqual(ownOnly, { spanned: ['10.246.0.0', '10.247.0.0 end'], spanpeers: ['10.246.0.0-10.246.255.255 front'] });

  // Two foreign spans either side of it (adjacent intervals), one overlapping it (left out).
  inNetns(l.host, () => syncForeignSpans([
    { subnet: '10.247.0.0/16', allowed: [{ routed: 'blue' }] },
    { subnet: '10.245.0.0/16', allowed: [{ routed: 'x' }, { bridge: 'bisof' }] },
    { subnet: '10.246.128.0/17', allowed: [{ routed: 'x' }] },
  ], own));
  t.deepEqual(sets(), {
    spanned: ['10.245.0.0', '10.246.0.0', '10.246.0.0 end', '10.247.0.0', '10.247.0.0 end', '10.248.0.0 end'],
    spanpeers: ['10.245.0.0-10.245.255.255 bridge bisof', '10.245.0.0-10.245.255.255 x', '10.246.0.0-10.246.255.255 front', '10.247.0.0-10.247.255.255 blue'],
  }, 'both foreign spans with their pairs; the overlapping one not');
  const again = sets();
  inNetns(l.host, () => syncForeignSpans([{ subnet: '10.247.0.0/16', allowed: [{ routed: 'blue' }] }, { subnet: '10.245.0.0/16', allowed: [{ routed: 'x' }, { bridge: 'bisof' }] }], own));
  t.deepEqual(sets(), again, 'repeating it changes nothing');

  // One definition gone, the other no longer allowed with the bridge: their elements go, the own span's stay.
  inNetns(l.host, () => syncForeignSpans([{ subnet: '10.245.0.0/16', allowed: [{ routed: 'x' }] }], own));
  t.deepEqual(sets(), { spanned: ['10.245.0.0', '10.246.0.0', '10.246.0.0 end', '10.247.0.0 end'], spanpeers: ['10.245.0.0-10.245.255.255 x', '10.246.0.0-10.246.255.255 front'] });
  inNetns(l.host, () => syncForeignSpans([], own));
  t.deepEqual(sets(), ownOnly, 'nothing foreign: exactly the own span\'s elements');
  // A driver that lost track (restarted): what is beyond its own spans is foreign, and goes.
  inNetns(l.host, () => syncForeignSpans([{ subnet: '10.250.0.0/16', allowed: [{ routed: 'x' }] }], own));
  inNetns(l.host, () => removeIsolation({ routed: 'red' }, own));
  inNetns(l.host, () => syncForeignSpans([], []));
  t.deepEqual(sets(), { spanned: [], spanpeers: [] }, 'nothing left');
});
