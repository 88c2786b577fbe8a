import test, { type ExecutionContext } from 'ava';
import { cidrContains, parseCIDR, parseIP } from '../../lib/ip/addr.js';
import { readNodeState } from '../../lib/node-state.js';
import { EtcdKV } from '../../lib/store/etcd.js';
import { ipamEtcdPrefix } from '../../ipam/store.js';
import type { DockerPluginConfig } from '../../docker/config.js';
import { SharedNetworks } from '../../docker/shared.js';
import { POD_NETWORK } from '../../lab/bgp.js';
import { vxlanFiles } from '../../lab/vxlan.js';
import type { LabNode, LabState } from '../../lab/index.js';
import { DockerRig, IMAGE } from '../helpers/docker.js';
import { withLab } from '../helpers/lab.js';
import { until } from '../helpers/wait.js';
import { runIn } from '../../conformance/spawn.js';
import { NETLINK_NETFILTER } from '../../lib/netlink/constants.js';
import { nftListElements } from '../../lib/netlink/nft-set.js';
import { NFPROTO_INET, nftGetTable } from '../../lib/netlink/nftables.js';
import { masqTableName } from '../../plugins/bridge/masq.js';
import { NetlinkSocket } from '../../lib/netlink/socket.js';
import { inNetns } from '../../lib/netns/netns.js';
import { ISOLATION_TABLE, isolationGroup } from '../../plugins/common/isolation.js';
import { vethNames } from '../../docker/dataplane.js';
import { Netlink } from '../../lib/netlink/handle.js';
import type { RefreshResponse } from '../../docker/api.js';

// One Docker network across two hosts: two lab nodes (namespaces) with tetherd in VXLAN or BGP mode on the
// lab's etcd, each with a private dockerd of its own (test/helpers/docker.ts, in the node's namespace) and
// tetherd docker-plugin configured with the same etcd.

const etcdOf = (lab: LabState) => ({ endpoints: [lab.etcd.endpoint], prefix: `/${lab.prefix}`, timeoutMs: 4000 });

/** What differs between the modes: the plugin's config, the name the hosts share, where the addresses are kept. */
interface ModeCase {
  mode: 'vxlan' | 'bgp';
  plugin(lab: LabState, node: LabNode): DockerPluginConfig;
  /** The name the hosts share the network's definition under (the overlay, tetherd's IPAM network). */
  shared: string;
  /** The IPAM network in etcd the Docker addresses are in. */
  ipamNetwork(lab: LabState): string;
  /** The container's routes: a default route through its host. */
  route(lab: LabState): RegExp;
  /** Checks an address against the host it was given on. */
  fromHost(t: ExecutionContext, lab: LabState, node: LabNode, ip: string, prefix: string): void;
}

const VXLAN: ModeCase = {
  mode: 'vxlan',
  plugin: (lab, node) => ({ etcd: etcdOf(lab), vxlanStateFile: vxlanFiles(node).state, logLevel: 'warn' }),
  shared: 'lab',
  ipamNetwork: (lab) => `docker-${lab.pool.replace(/[/:]/g, '_')}`,
  route: (lab) => new RegExp(`${lab.pool.replace(/\./g, '\\.')} via `),
  fromHost(t, _lab, node, ip, prefix) {
    const subnet = readNodeState(vxlanFiles(node).state)!.subnet;
    t.true(cidrContains(parseCIDR(subnet)!, parseIP(ip)!), `${ip} is in ${node.name}'s subnet ${subnet}`);
    t.is(prefix, subnet.split('/')[1], 'with the subnet\'s prefix');
  },
};

const BGP: ModeCase = {
  mode: 'bgp',
  plugin: (lab, node) => ({ etcd: etcdOf(lab), nodeName: node.name, bgp: { ipamNetwork: POD_NETWORK }, logLevel: 'warn' }),
  shared: POD_NETWORK,
  ipamNetwork: () => POD_NETWORK,
  route: () => /default via 169\.254\.1\.1 dev eth0/,
  fromHost(t, lab, node, ip, prefix) {
    t.true(cidrContains(parseCIDR(lab.pool)!, parseIP(ip)!), `${ip} on ${node.name} is in the pool`);
    t.is(prefix, '32', 'a routed /32');
  },
};

async function rigOn(lab: LabState, node: LabNode, m: ModeCase): Promise<DockerRig> {
  const rig = new DockerRig();
  try {
    await rig.start({ netns: node.netns });
    await rig.startPlugin(m.plugin(lab, node));
  } catch (e) {
    await rig.stop();
    throw e;
  }
  return rig;
}

/** Two lab nodes, each with its own private dockerd and driver in mode `m`; both rigs stopped whatever happens. */
async function withTwoHosts(t: ExecutionContext, m: ModeCase, fn: (lab: LabState, rigs: [DockerRig, DockerRig]) => Promise<void>): Promise<void> {
  await withLab(t, { nodes: 2, podsPerNode: 0, mode: m.mode }, async (lab) => {
    const rigs: DockerRig[] = [];
    try {
      for (const n of lab.nodes) rigs.push(await rigOn(lab, n, m));
      await fn(lab, rigs as [DockerRig, DockerRig]);
    } finally {
      for (const rig of rigs) await rig.stop();
    }
  });
}

const netOf = (rig: DockerRig, name: string, field: string) => rig.ok('inspect', '-f', `{{(index .NetworkSettings.Networks "ov").${field}}}`, name);
const ping = async (rig: DockerRig, from: string, to: string) => (await rig.docker(['exec', from, 'ping', '-c', '1', '-W', '2', to])).status === 0;
const driverLinks = (rig: DockerRig) => rig.links().filter((l) => /^(tdh|tdc|tdk-)/.test(l));

async function acrossHosts(t: ExecutionContext, m: ModeCase): Promise<void> {
  await withTwoHosts(t, m, async (lab, rigs) => {
    const [a, b] = rigs;
    const [n1, n2] = lab.nodes;
    const create = (rig: DockerRig, subnet: string, name: string) => rig.docker(['network', 'create', '-d', 'tether', '--ipam-driver', 'tether', '-o', `mode=${m.mode}`, '--subnet', subnet, name]);
    for (const rig of rigs) {
      const r = await create(rig, lab.pool, 'ov');
      t.is(r.status, 0, r.stderr);
    }
    const shared = SharedNetworks.onEtcd(etcdOf(lab), lab.dir);
    const def = await shared.get(m.shared);
    t.like(def.definition, { mode: m.mode, subnet: lab.pool, createdBy: 'n1' }, 'the first host recorded the definition');
    t.deepEqual(def.hosts, ['n1', 'n2'], 'both hosts joined it');

    await a.ok('run', '-d', '--name', 'ca', '--network', 'ov', IMAGE, 'sleep', '100000');
    await b.ok('run', '-d', '--name', 'cb', '--network', 'ov', IMAGE, 'sleep', '100000');
    const ipA = await netOf(a, 'ca', 'IPAddress');
    const ipB = await netOf(b, 'cb', 'IPAddress');
    t.not(ipA, ipB, 'the two hosts gave different addresses');
    m.fromHost(t, lab, n1, ipA, await netOf(a, 'ca', 'IPPrefixLen'));
    m.fromHost(t, lab, n2, ipB, await netOf(b, 'cb', 'IPPrefixLen'));
    // The overlay or BGP may still be learning of the new addresses: bounded polling, not a sleep.
    await until('ca on n1 to reach cb on n2', () => ping(a, 'ca', ipB), { ms: 30_000, every: 300 });
    await until('cb on n2 to reach ca on n1', () => ping(b, 'cb', ipA), { ms: 30_000, every: 300 });
    t.regex((await a.docker(['exec', 'ca', 'ip', 'route'])).stdout, m.route(lab), 'the container routes through its host');

    // Both hosts' addresses are in the shared IPAM, each in a block of its own host.
    const ipamKV = new EtcdKV({ endpoints: [lab.etcd.endpoint], prefix: ipamEtcdPrefix(`/${lab.prefix}`, m.ipamNetwork(lab)), timeoutMs: 4000 });
    const blockNodes = async () => [...(await ipamKV.range('block/')).values()].map((e) => (JSON.parse(e.value) as { node: string }).node).sort();
    const dockerHandles = async () => [...(await ipamKV.range('handle/')).keys()].filter((k) => k.startsWith('handle/docker-'));
    t.deepEqual(await blockNodes(), ['n1', 'n2'], 'one block per host in etcd');
    t.is((await dockerHandles()).length, 2, 'the two containers\' addresses');

    const linksB = driverLinks(b).sort();
    const other = await create(b, '10.99.0.0/16', 'ov2');
    t.not(other.status, 0);
    t.regex(other.stderr, new RegExp(`network "${m.shared}" is already defined across hosts as -o mode=${m.mode} --subnet 10\\.244\\.0\\.0/16 \\(created on n1\\); this host asked for -o mode=${m.mode} --subnet 10\\.99\\.0\\.0/16`));
    t.deepEqual(driverLinks(b).sort(), linksB, 'the refused network left no link');
    t.false((await b.ok('network', 'ls', '--format', '{{.Name}}')).split('\n').includes('ov2'), 'nor a Docker network');
    t.deepEqual((await shared.get(m.shared)).hosts, ['n1', 'n2'], 'nor a change to the shared definition');

    await a.ok('rm', '-f', 'ca');
    await b.ok('rm', '-f', 'cb');
    await a.ok('network', 'rm', 'ov');
    t.deepEqual(await shared.get(m.shared), { definition: def.definition, hosts: ['n2'] }, 'n1 left; the definition stays for n2');
    await b.ok('network', 'rm', 'ov');
    t.deepEqual(await shared.get(m.shared), { hosts: [] }, 'the last host removed the definition');
    t.deepEqual(await dockerHandles(), [], 'no address left held');
    // VXLAN: the blocks are the Docker network's own and go with it. BGP: they are tetherd's network's, kept
    // with their host's affinity as tether-ipam keeps a node's blocks for its next containers.
    if (m.mode === 'vxlan') t.deepEqual(await blockNodes(), [], 'both hosts gave their blocks back');
    ipamKV.close();
    for (const rig of rigs) t.deepEqual(driverLinks(rig), [], 'no bridge or veth left');
  });
}

test.serial('-o mode=vxlan on two dockerds is one network: containers on host A reach host B by address, addresses never collide, another subnet is refused naming both, nothing left after', (t) => acrossHosts(t, VXLAN));

test.serial('-o mode=bgp on two dockerds is one network: routed /32s announced by tetherd, containers on host A reach host B, addresses never collide, another subnet is refused naming both, nothing left after', (t) => acrossHosts(t, BGP));

// ---- Isolation and --internal across hosts.

/** Packets the isolation rules of a node refused so far (their counters): a refusal is told from any other failure. */
async function refusals(rig: DockerRig): Promise<number> {
  const r = await rig.inNs('/usr/sbin/nft', ['-j', 'list', 'chain', 'inet', 'tether_isolation', 'forward']);
  if (r.status !== 0) throw new Error(`nft list chain: ${r.stderr}`);
  const rules = (JSON.parse(r.stdout) as { nftables: { rule?: { expr: { counter?: { packets: number } }[] } }[] }).nftables;
  return rules.flatMap((x) => x.rule?.expr ?? []).reduce((n, e) => n + (e.counter?.packets ?? 0), 0);
}

/** The probe fails, and it is the isolation rules of one of the hosts that refused it (their counters moved). */
async function refused(t: ExecutionContext, rigs: DockerRig[], what: string, probe: () => Promise<boolean>): Promise<void> {
  const before = await Promise.all(rigs.map(refusals));
  t.false(await probe(), `${what}: no answer`);
  const after = await Promise.all(rigs.map(refusals));
  t.true(after.some((n, i) => n > before[i]), `${what}: refused by the isolation rules`);
}

const addrIn = (rig: DockerRig, name: string, net: string) => rig.ok('inspect', '-f', `{{(index .NetworkSettings.Networks "${net}").IPAddress}}`, name);
/** A -o mode=bgp network named (-o name=) as the hosts share it. */
const bgpNet = (rig: DockerRig, name: string, subnet: string, ...extra: string[]) => rig.ok('network', 'create', '-d', 'tether', '--ipam-driver', 'tether', '-o', 'mode=bgp', '-o', `name=${name}`, '--subnet', subnet, ...extra, name);
const run = (rig: DockerRig, name: string, net: string) => rig.ok('run', '-d', '--name', name, '--network', net, IMAGE, 'sleep', '100000');

/**
 * What a container with NET_ADMIN could do: give itself a default route. --internal must hold anyway,
 * so the probe reaches the host's firewall rather than failing for want of a route in the container.
 */
async function forceDefaultRoute(rig: DockerRig, name: string, via: string): Promise<void> {
  const pid = await rig.ok('inspect', '-f', '{{.State.Pid}}', name);
  const r = await runIn(undefined, 'nsenter', ['-t', pid, '-n', 'ip', 'route', 'replace', 'default', 'via', via], 10_000);
  if (r.status !== 0) throw new Error(`default route in ${name}: ${r.stderr}`);
}

/** Every isolation element a node holds (over netlink): none may be left once its networks are gone. */
const isolationElements = (rig: DockerRig) => Object.fromEntries(['isolated', 'internal', 'self', 'peers', 'spanned', 'own', 'spanpeers'].map((set) => [set,
  inNetns(rig.netnsPath, () => NetlinkSocket.within(NETLINK_NETFILTER, (sock) => nftListElements(sock, NFPROTO_INET, ISOLATION_TABLE, set))).length]));
const NO_ELEMENTS = { isolated: 0, internal: 0, self: 0, peers: 0, spanned: 0, own: 0, spanpeers: 0 };

async function networkRm(rig: DockerRig, name: string): Promise<void> {
  // dockerd drops a removed container's endpoint a moment after rm returns: ask again while it says so.
  let last = '';
  await until(`docker network rm ${name}`, async () => {
    const r = await rig.docker(['network', 'rm', name]);
    if (r.status === 0) return true;
    last = r.stderr.trim();
    if (!/has active endpoints/.test(r.stderr)) throw new Error(last);
    return false;
  }, { ms: 20_000, every: 500, last: () => last });
}

test.serial('-o mode=bgp networks are isolated from each other and from bridge networks, on one host and across hosts, both ways; -o allowNetworks lets a pair talk; --internal reaches its own containers on the other host and nothing outside; nothing left after', async (t) => {
  await withTwoHosts(t, BGP, async (lab, rigs) => {
    const [a, b] = rigs;
    const [n1, n2] = lab.nodes;
    for (const rig of rigs) {
      await bgpNet(rig, 'web', '10.246.0.0/16');
      await bgpNet(rig, 'db', '10.247.0.0/16');
      await bgpNet(rig, 'priv', '10.248.0.0/16', '--internal');
    }
    // Allowed by one side only, on one host only (as the CNI plugins' allowNetworks): api <-> web.
    await bgpNet(a, 'api', '10.249.0.0/16', '-o', 'allowNetworks=web');
    await a.ok('network', 'create', '-d', 'tether', '--ipam-driver', 'tether', '--subnet', '10.31.0.0/24', 'loc');
    const shared = SharedNetworks.onEtcd(etcdOf(lab), lab.dir);
    t.deepEqual([...(await shared.definitions()).keys()].sort(), ['api', 'db', 'priv', 'web'], 'each bgp network shared under its -o name');

    for (const [rig, h] of [[a, '1'], [b, '2']] as const) {
      await run(rig, `w${h}`, 'web');
      await run(rig, `d${h}`, 'db');
      await run(rig, `p${h}`, 'priv');
    }
    await run(a, 'a1', 'api');
    await run(a, 'l1', 'loc');
    const ip: Record<string, string> = {};
    for (const [rig, name, net] of [[a, 'w1', 'web'], [b, 'w2', 'web'], [a, 'd1', 'db'], [b, 'd2', 'db'], [a, 'p1', 'priv'], [b, 'p2', 'priv'], [a, 'a1', 'api'], [a, 'l1', 'loc']] as const) {
      ip[name] = await addrIn(rig, name, net);
    }

    // Allowed: the same network on one host and across hosts (BGP may still be learning: bounded polling).
    await until('w1 on n1 to reach w2 on n2', () => ping(a, 'w1', ip.w2), { ms: 30_000, every: 300 });
    await until('d2 on n2 to reach d1 on n1', () => ping(b, 'd2', ip.d1), { ms: 30_000, every: 300 });
    await until('p1 on n1 to reach p2 on n2 (internal)', () => ping(a, 'p1', ip.p2), { ms: 30_000, every: 300 });
    t.true(await ping(b, 'p2', ip.p1), 'internal: p2 on n2 reaches p1 on n1');
    await until('a1 (api, allows web) to reach w2 on n2', () => ping(a, 'a1', ip.w2), { ms: 30_000, every: 300 });
    t.true(await ping(b, 'w2', ip.a1), 'w2 on n2 reaches a1 (api allows web; n1 carries the pair both ways)');
    t.true(await ping(a, 'w1', ip.a1), 'w1 reaches a1 on the same host');
    t.true(await ping(a, 'w1', n2.underlayIP), 'a non-internal network reaches beyond its host (n2\'s underlay address)');

    // Refused, both ways: bgp vs bgp on one host, across hosts, bgp vs a bridge network.
    await refused(t, rigs, 'w1 -> d1 (one host)', () => ping(a, 'w1', ip.d1));
    await refused(t, rigs, 'd1 -> w1 (one host)', () => ping(a, 'd1', ip.w1));
    await refused(t, rigs, 'w1 on n1 -> d2 on n2', () => ping(a, 'w1', ip.d2));
    await refused(t, rigs, 'd2 on n2 -> w1 on n1', () => ping(b, 'd2', ip.w1));
    await refused(t, rigs, 'w1 (bgp) -> l1 (bridge)', () => ping(a, 'w1', ip.l1));
    await refused(t, rigs, 'l1 (bridge) -> w1 (bgp)', () => ping(a, 'l1', ip.w1));
    await refused(t, rigs, 'a1 (api) -> d2 on n2 (not allowed)', () => ping(a, 'a1', ip.d2));
    // --internal: not the other networks, not beyond the network, even with a default route of its own.
    await refused(t, rigs, 'w2 on n2 -> p1 (internal) on n1', () => ping(b, 'w2', ip.p1));
    t.notRegex((await a.ok('exec', 'p1', 'ip', 'route')), /default/, 'internal: no default route in the container');
    await forceDefaultRoute(a, 'p1', '169.254.1.1');
    await refused(t, rigs, 'p1 (internal, own default route) -> n2\'s underlay address', () => ping(a, 'p1', n2.underlayIP));
    await refused(t, rigs, 'p1 (internal, own default route) -> w2 on n2', () => ping(a, 'p1', ip.w2));
    await refused(t, rigs, 'p1 (internal, own default route) -> w1 on its host', () => ping(a, 'p1', ip.w1));
    t.true(await ping(a, 'p1', ip.p2), 'and p1 still reaches p2 on n2');

    // A routed container's host veth carries its network's group; the driver's start puts it back.
    const veth = vethNames(await a.ok('inspect', '-f', '{{(index .NetworkSettings.Networks "web").EndpointID}}', 'w1')).hostVeth;
    const groupOfVeth = () => Netlink.within(a.netnsPath, (nl) => nl.linkByName(veth)!.group);
    t.is(groupOfVeth(), isolationGroup({ routed: 'web' }), 'w1\'s host veth is in web\'s isolation group');
    Netlink.within(a.netnsPath, (nl) => nl.linkSet(nl.linkByName(veth)!.index, { group: 0 }));
    await a.stopPlugin();
    await a.startPlugin(BGP.plugin(lab, n1));
    t.is(groupOfVeth(), isolationGroup({ routed: 'web' }), 'back in its group after the driver restarted');

    for (const rig of rigs) await rig.ok('rm', '-f', ...(await rig.ok('ps', '-aq')).split('\n').filter(Boolean));
    for (const net of ['web', 'db', 'priv']) for (const rig of rigs) await networkRm(rig, net);
    await networkRm(a, 'api');
    await networkRm(a, 'loc');
    // A host that removed a network before its last host did keeps it as a foreign span until it refreshes.
    for (const rig of rigs) t.deepEqual(await refreshHosts(rig), { Foreign: [] }, 'nothing defined across hosts any more');
    for (const rig of rigs) {
      t.deepEqual(isolationElements(rig), NO_ELEMENTS, 'no isolation element left');
      t.deepEqual(driverLinks(rig), [], 'no veth left');
    }
    t.deepEqual([...(await shared.definitions()).keys()], [], 'no definition left');
  });
});

/** The driver re-reads the networks defined across hosts now: what its periodic refresh does, on demand. */
const refreshHosts = (rig: DockerRig) => rig.driverCall<RefreshResponse>('Tether.Refresh');

/** The node has a route (not its default one) to the address: BGP brought the other host's block. */
const routesTo = (rig: DockerRig, ip: string) => Netlink.within(rig.netnsPath, (nl) => nl.routes(4).some((r) => r.dst && r.dst.prefix > 0 && cidrContains(r.dst, parseIP(ip)!)));

/** The isolation set elements of a node that are about `subnet`: its interval in "spanned", and its pairs in "spanpeers". */
function spanElements(rig: DockerRig, subnet: string): { spanned: number; spanpeers: number } {
  const first = Buffer.from(parseCIDR(subnet)!.ip.bytes);
  return inNetns(rig.netnsPath, () => NetlinkSocket.within(NETLINK_NETFILTER, (sock) => ({
    spanned: nftListElements(sock, NFPROTO_INET, ISOLATION_TABLE, 'spanned').filter((e) => e.key.equals(first)).length,
    spanpeers: nftListElements(sock, NFPROTO_INET, ISOLATION_TABLE, 'spanpeers').filter((e) => e.key.subarray(0, 4).equals(first)).length,
  })));
}

test.serial('-o mode=bgp networks each on one host only: isolated across hosts both ways, each host filtering by the subnets of the networks it has none of (learnt from the shared store); an allowed pair still reaches both ways; the same network across hosts too; no foreign span left once the definitions are gone', async (t) => {
  await withTwoHosts(t, BGP, async (lab, rigs) => {
    const [a, b] = rigs;
    // n1 has red and front only, n2 blue and back only; front allows back (one side's option, on n1).
    await bgpNet(a, 'red', '10.246.0.0/16');
    await bgpNet(a, 'front', '10.249.0.0/16', '-o', 'allowNetworks=back');
    await bgpNet(b, 'blue', '10.247.0.0/16');
    await bgpNet(b, 'back', '10.250.0.0/16');
    await run(a, 'r1', 'red');
    await run(a, 'f1', 'front');
    await run(b, 'b2', 'blue');
    await run(b, 'k2', 'back');
    const ip = { r1: await addrIn(a, 'r1', 'red'), f1: await addrIn(a, 'f1', 'front'), b2: await addrIn(b, 'b2', 'blue'), k2: await addrIn(b, 'k2', 'back') };

    // A refusal is only told from a missing route once each host routes to the other's container (BGP).
    await until('n1 to route to b2 on n2', () => routesTo(a, ip.b2), { ms: 30_000, every: 300 });
    await until('n2 to route to r1 on n1', () => routesTo(b, ip.r1), { ms: 30_000, every: 300 });
    // n2 made its networks after n1's: it learnt them then, and refuses its containers' traffic to red at
    // once (by destination: traffic leaving a masquerading network carries its host's address, so the
    // sender's host is the one that can tell; n1 does the same once it knows blue, below).
    t.true(spanElements(b, '10.246.0.0/16').spanned > 0, 'n2 knows red\'s subnet from its CreateNetwork');
    await until('f1 (front, allows back) on n1 to reach k2 on n2', () => ping(a, 'f1', ip.k2), { ms: 30_000, every: 300 });
    t.true(await ping(b, 'k2', ip.f1), 'k2 (back) on n2 reaches f1 (front) on n1: n2 learnt front\'s allowance from the store');
    await refused(t, [b], 'b2 (blue) on n2 -> r1 (red) on n1, refused by n2 before any refresh', () => ping(b, 'b2', ip.r1));

    // n1 learns n2's networks (its periodic refresh, on demand): each host now refuses on its own.
    const learnt = await refreshHosts(a);
    t.deepEqual(learnt.Foreign, [
      { Name: 'back', Subnet: '10.250.0.0/16', Allowed: ['back', 'front'] },
      { Name: 'blue', Subnet: '10.247.0.0/16', Allowed: ['blue'] },
    ], 'n1 knows back (allowed with its front) and blue');
    t.deepEqual((await refreshHosts(b)).Foreign, [
      { Name: 'front', Subnet: '10.249.0.0/16', Allowed: ['back', 'front'] },
      { Name: 'red', Subnet: '10.246.0.0/16', Allowed: ['red'] },
    ], 'n2 knows front (it allows back) and red');
    await refused(t, [a], 'r1 (red) on n1 -> b2 (blue) on n2, refused by n1 itself', () => ping(a, 'r1', ip.b2));
    await refused(t, [b], 'b2 (blue) on n2 -> r1 (red) on n1, refused by n2 itself', () => ping(b, 'b2', ip.r1));
    await refused(t, [a], 'f1 (front) on n1 -> b2 (blue) on n2 (not allowed)', () => ping(a, 'f1', ip.b2));
    await refused(t, [b], 'k2 (back) on n2 -> r1 (red) on n1 (not allowed)', () => ping(b, 'k2', ip.r1));
    t.true(await ping(a, 'f1', ip.k2), 'the allowed pair still: f1 -> k2');
    t.true(await ping(b, 'k2', ip.f1), 'and k2 -> f1');

    // red on n2 too: the foreign span becomes n2's own network, which reaches itself across hosts, and blue still not.
    await bgpNet(b, 'red', '10.246.0.0/16');
    await run(b, 'r2', 'red');
    const r2 = await addrIn(b, 'r2', 'red');
    await until('r1 on n1 to reach r2 on n2', () => ping(a, 'r1', r2), { ms: 30_000, every: 300 });
    t.true(await ping(b, 'r2', ip.r1), 'r2 on n2 reaches r1 on n1');
    await refused(t, rigs, 'b2 (blue) -> r1 (red) on n1, red now on both hosts', () => ping(b, 'b2', ip.r1));
    t.deepEqual((await refreshHosts(b)).Foreign.map((f) => f.Name), ['front'], 'red is n2\'s own now, not foreign');

    for (const rig of rigs) await rig.ok('rm', '-f', ...(await rig.ok('ps', '-aq')).split('\n').filter(Boolean));
    await networkRm(b, 'red');
    t.true(spanElements(b, '10.246.0.0/16').spanned > 0, 'red removed on n2 but still on n1: foreign on n2 again');
    await networkRm(a, 'red');
    await networkRm(a, 'front');
    await networkRm(b, 'blue');
    await networkRm(b, 'back');
    // n2 removed the last networks: its DeleteNetwork re-read the store. n1 still has blue and back as
    // foreign spans until it refreshes (its timer, or here on demand).
    t.deepEqual((await refreshHosts(a)).Foreign, [], 'n1: nothing defined across hosts any more');
    t.deepEqual((await refreshHosts(b)).Foreign, [], 'n2 neither');
    for (const rig of rigs) {
      t.deepEqual(isolationElements(rig), NO_ELEMENTS, 'no isolation element left, foreign spans included');
      t.deepEqual(driverLinks(rig), [], 'no veth left');
    }
  });
});

test.serial('-o mode=vxlan --internal: containers reach each other across hosts, nothing beyond the overlay (no default route, and refused with one); nothing left after', async (t) => {
  await withTwoHosts(t, VXLAN, async (lab, rigs) => {
    const [a, b] = rigs;
    const [n1, n2] = lab.nodes;
    for (const rig of rigs) await rig.ok('network', 'create', '-d', 'tether', '--ipam-driver', 'tether', '-o', 'mode=vxlan', '--internal', '--subnet', lab.pool, 'ov');
    await a.ok('network', 'create', '-d', 'tether', '--ipam-driver', 'tether', '--subnet', '10.31.0.0/24', 'loc');
    await a.ok('run', '-d', '--name', 'ca', '--network', 'ov', IMAGE, 'sleep', '100000');
    await b.ok('run', '-d', '--name', 'cb', '--network', 'ov', IMAGE, 'sleep', '100000');
    await a.ok('run', '-d', '--name', 'l1', '--network', 'loc', IMAGE, 'sleep', '100000');
    const ipA = await addrIn(a, 'ca', 'ov');
    const ipB = await addrIn(b, 'cb', 'ov');
    const ipL = await addrIn(a, 'l1', 'loc');
    await until('ca on n1 to reach cb on n2', () => ping(a, 'ca', ipB), { ms: 30_000, every: 300 });
    t.true(await ping(b, 'cb', ipA), 'cb on n2 reaches ca on n1');
    t.true(await ping(a, 'l1', n2.underlayIP), 'a bridge network\'s container reaches n2\'s underlay address (the probe can succeed)');
    const routes = await a.ok('exec', 'ca', 'ip', 'route');
    t.notRegex(routes, /default/, 'no default route in the container');
    t.false(await ping(a, 'ca', n2.underlayIP), 'nothing beyond the overlay without a route');
    const gw = routes.match(/via (\S+)/)![1];
    await forceDefaultRoute(a, 'ca', gw);
    await refused(t, rigs, 'ca (internal, own default route) -> n2\'s underlay address', () => ping(a, 'ca', n2.underlayIP));
    await refused(t, rigs, 'ca (internal) -> l1 (another network)', () => ping(a, 'ca', ipL));
    await refused(t, rigs, 'l1 -> ca (internal)', () => ping(a, 'l1', ipA));
    await refused(t, rigs, 'l1 -> cb (internal) on n2', () => ping(a, 'l1', ipB));
    t.true(await ping(a, 'ca', ipB), 'and ca still reaches cb on n2');
    const id = await a.ok('network', 'inspect', '-f', '{{.Id}}', 'ov');
    t.is(inNetns(a.netnsPath, () => nftGetTable(NFPROTO_INET, masqTableName(`docker-${id.slice(0, 12)}`))), null, 'no masquerade table for the network');

    for (const rig of rigs) await rig.ok('rm', '-f', ...(await rig.ok('ps', '-aq')).split('\n').filter(Boolean));
    for (const rig of rigs) await networkRm(rig, 'ov');
    await networkRm(a, 'loc');
    for (const rig of rigs) {
      t.deepEqual(isolationElements(rig), NO_ELEMENTS, 'no isolation element left');
      t.deepEqual(driverLinks(rig), [], 'no bridge or veth left');
    }
  });
});
