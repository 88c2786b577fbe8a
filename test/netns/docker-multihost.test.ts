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

const netOf = (rig: DockerRig, name: string, field: string) => rig.ok('inspect', '-f', `{{(index .NetworkSettings.Networks "ov").${field}}}`, name);
const ping = async (rig: DockerRig, from: string, to: string) => (await rig.docker(['exec', from, 'ping', '-c', '1', '-W', '2', to])).status === 0;
const driverLinks = (rig: DockerRig) => rig.links().filter((l) => /^(tdh|tdc|tdk-)/.test(l));

async function acrossHosts(t: ExecutionContext, m: ModeCase): Promise<void> {
  await withLab(t, { nodes: 2, podsPerNode: 0, mode: m.mode }, async (lab) => {
    const [n1, n2] = lab.nodes;
    const rigs: DockerRig[] = [];
    try {
      rigs.push(await rigOn(lab, n1, m));
      rigs.push(await rigOn(lab, n2, m));
      const [a, b] = rigs;
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
    } finally {
      for (const rig of rigs) await rig.stop();
    }
  });
}

test.serial('-o mode=vxlan on two dockerds is one network: containers on host A reach host B by address, addresses never collide, another subnet is refused naming both, nothing left after', (t) => acrossHosts(t, VXLAN));

test.serial('-o mode=bgp on two dockerds is one network: routed /32s announced by tetherd, containers on host A reach host B, addresses never collide, another subnet is refused naming both, nothing left after', (t) => acrossHosts(t, BGP));
