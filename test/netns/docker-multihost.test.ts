import test from 'ava';
import { cidrContains, parseCIDR, parseIP } from '../../lib/ip/addr.js';
import { readNodeState } from '../../lib/node-state.js';
import { EtcdKV } from '../../lib/store/etcd.js';
import { ipamEtcdPrefix } from '../../ipam/store.js';
import { SharedNetworks } from '../../docker/shared.js';
import { vxlanFiles } from '../../lab/vxlan.js';
import type { LabNode, LabState } from '../../lab/index.js';
import { DockerRig, IMAGE } from '../helpers/docker.js';
import { withLab } from '../helpers/lab.js';
import { until } from '../helpers/wait.js';

// One Docker network across two hosts: two lab nodes (namespaces) with tetherd in VXLAN mode on the lab's
// etcd, each with a private dockerd of its own (test/helpers/docker.ts, in the node's namespace) and
// tetherd docker-plugin configured with the same etcd.

const etcdOf = (lab: LabState) => ({ endpoints: [lab.etcd.endpoint], prefix: `/${lab.prefix}` });

async function rigOn(lab: LabState, node: LabNode): Promise<DockerRig> {
  const rig = new DockerRig();
  try {
    await rig.start({ netns: node.netns });
    await rig.startPlugin({ etcd: { ...etcdOf(lab), timeoutMs: 4000 }, vxlanStateFile: vxlanFiles(node).state, logLevel: 'warn' });
  } catch (e) {
    await rig.stop();
    throw e;
  }
  return rig;
}

const addrOf = (rig: DockerRig, name: string, network: string) => rig.ok('inspect', '-f', `{{(index .NetworkSettings.Networks "${network}").IPAddress}}`, name);
const ping = async (rig: DockerRig, from: string, to: string) => (await rig.docker(['exec', from, 'ping', '-c', '1', '-W', '2', to])).status === 0;
const driverLinks = (rig: DockerRig) => rig.links().filter((l) => /^(tdh|tdc|tdk-)/.test(l));

test('-o mode=vxlan on two dockerds is one network: containers on host A reach host B by address, addresses never collide, another subnet is refused naming both, nothing left after', async (t) => {
  await withLab(t, { nodes: 2, podsPerNode: 0, mode: 'vxlan' }, async (lab) => {
    const [n1, n2] = lab.nodes;
    const rigs: DockerRig[] = [];
    try {
      rigs.push(await rigOn(lab, n1));
      rigs.push(await rigOn(lab, n2));
      const [a, b] = rigs;
      const create = (rig: DockerRig, subnet: string, name: string) => rig.docker(['network', 'create', '-d', 'tether', '--ipam-driver', 'tether', '-o', 'mode=vxlan', '--subnet', subnet, name]);
      for (const rig of rigs) {
        const r = await create(rig, lab.pool, 'ov');
        t.is(r.status, 0, r.stderr);
      }
      const shared = SharedNetworks.onEtcd({ ...etcdOf(lab), timeoutMs: 4000 }, lab.dir);
      const def = await shared.get('lab');
      t.like(def.definition, { mode: 'vxlan', subnet: lab.pool, createdBy: 'n1' }, 'the first host recorded the definition');
      t.deepEqual(def.hosts, ['n1', 'n2'], 'both hosts joined it');

      await a.ok('run', '-d', '--name', 'ca', '--network', 'ov', IMAGE, 'sleep', '100000');
      await b.ok('run', '-d', '--name', 'cb', '--network', 'ov', IMAGE, 'sleep', '100000');
      const ipA = await addrOf(a, 'ca', 'ov');
      const ipB = await addrOf(b, 'cb', 'ov');
      t.not(ipA, ipB, 'the two hosts gave different addresses');
      t.true(cidrContains(parseCIDR(readNodeState(vxlanFiles(n1).state)!.subnet)!, parseIP(ipA)!), `${ipA} is in n1's subnet`);
      t.true(cidrContains(parseCIDR(readNodeState(vxlanFiles(n2).state)!.subnet)!, parseIP(ipB)!), `${ipB} is in n2's subnet`);
      // The overlay may still be learning the new subnets' neighbours: bounded polling, not a sleep.
      await until('ca on n1 to reach cb on n2', () => ping(a, 'ca', ipB), { ms: 30_000, every: 300 });
      await until('cb on n2 to reach ca on n1', () => ping(b, 'cb', ipA), { ms: 30_000, every: 300 });
      t.regex((await a.docker(['exec', 'ca', 'ip', 'route'])).stdout, new RegExp(`${lab.pool.replace(/\./g, '\\.')} via `), 'a route to the whole pool via the host');

      // Both hosts' addresses are in the shared IPAM: each holds its own.
      const ipamKV = new EtcdKV({ endpoints: [lab.etcd.endpoint], prefix: ipamEtcdPrefix(`/${lab.prefix}`, `docker-${lab.pool.replace(/[/:]/g, '_')}`), timeoutMs: 4000 });
      const blocks = async () => [...(await ipamKV.range('')).keys()].filter((k) => k.startsWith('block/'));
      t.is((await blocks()).length, 2, 'one block per host in etcd');

      const linksB = driverLinks(b).sort();
      const other = await create(b, '10.99.0.0/16', 'ov2');
      t.not(other.status, 0);
      t.regex(other.stderr, /network "lab" is already defined across hosts as -o mode=vxlan --subnet 10\.244\.0\.0\/16 \(created on n1\); this host asked for -o mode=vxlan --subnet 10\.99\.0\.0\/16/);
      t.deepEqual(driverLinks(b).sort(), linksB, 'the refused network left no link');
      t.false((await b.ok('network', 'ls', '--format', '{{.Name}}')).split('\n').includes('ov2'), 'nor a Docker network');
      t.deepEqual((await shared.get('lab')).hosts, ['n1', 'n2'], 'nor a change to the shared definition');

      await a.ok('rm', '-f', 'ca');
      await b.ok('rm', '-f', 'cb');
      await a.ok('network', 'rm', 'ov');
      t.deepEqual(await shared.get('lab'), { definition: def.definition, hosts: ['n2'] }, 'n1 left; the definition stays for n2');
      await b.ok('network', 'rm', 'ov');
      t.deepEqual(await shared.get('lab'), { hosts: [] }, 'the last host removed the definition');
      t.deepEqual(await blocks(), [], 'both hosts gave their blocks back');
      ipamKV.close();
      for (const rig of rigs) t.deepEqual(driverLinks(rig), [], 'no bridge or veth left');
    } finally {
      for (const rig of rigs) await rig.stop();
    }
  });
});
