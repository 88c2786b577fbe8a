import test from 'ava';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { runIn } from '../../conformance/spawn.js';
import { addToIP, cidrContains, formatCIDR, formatIP, parseCIDR, parseIP } from '../../lib/ip/addr.js';
import { Netlink } from '../../lib/netlink/handle.js';
import { netnsPath } from '../../lib/netns/netns.js';
import { addPod, labDown, labUp, type LabPod, type LabState } from '../../lab/index.js';
import { vxlanFiles } from '../../lab/vxlan.js';
import { readNodeState, type NodeState } from '../../lib/node-state.js';
import { DIST, PodmanRig } from '../helpers/podman.js';

// Podman (CNI backend) on tether-vxlan: a two-node VXLAN lab (etcd + a tetherd per node, lab/multinode.ts),
// podman running inside node n1's namespace as a runtime would on that node, its network a tether-vxlan
// conflist reading n1's tetherd state file. n2 holds one lab pod, the peer across the overlay.

let lab: LabState | undefined;
let rig: PodmanRig | undefined;
let remote: LabPod;
let state: NodeState;
let net: string;
const labDir = mkdtempSync(join(tmpdir(), 'to2-podvx-'));

test.before(async () => {
  lab = await labUp({ nodes: 2, podsPerNode: 0, mode: 'vxlan', dir: join(labDir, 'lab') });
  const [n1, n2] = lab.nodes;
  remote = await addPod(lab, n2);
  state = readNodeState(vxlanFiles(n1).state)!;
  rig = new PodmanRig({ host: netnsPath(n1.netns) });
  net = rig.addNetwork({
    cniVersion: '1.0.0',
    name: `${rig.prefix}vx`,
    plugins: [{
      type: 'tether-vxlan',
      stateFile: vxlanFiles(n1).state,
      dataDir: join(rig.dir, 'vxlan'),
      delegate: { isDefaultGateway: true },
      log: { file: rig.logFile, level: 'info' },
    }],
  });
});

test.after.always('podman containers, the lab (agents, etcd, namespaces) and every file are removed', async (t) => {
  const problems = rig?.cleanup() ?? [];
  const left = lab ? await labDown(lab) : [];
  rmSync(labDir, { recursive: true, force: true });
  t.deepEqual(problems, []);
  t.deepEqual(left, []);
  if (rig) t.false(existsSync(rig.dir));
});

const cnictl = (...args: string[]) => runIn(rig!.host, join(DIST, 'cnictl'), ['--conf-dir', rig!.confDir, ...args], 20_000);

/** What tether-ipam holds for the podman network (cnictl derives tether-vxlan's IPAM from the state file). */
async function reservations(): Promise<{ ip: string; containerID: string }[]> {
  const r = await cnictl('ipam', 'ls', net, '--json');
  if (r.status !== 0) throw new Error(`cnictl ipam ls: ${r.stdout}${r.stderr}`);
  return JSON.parse(r.stdout).allocations;
}

const address = async (name: string): Promise<string> => (await rig!.inspect(name)).NetworkSettings.Networks[net].IPAddress;

async function ping(from: string, to: string): Promise<string | undefined> {
  // A first packet across the overlay may wait on the pod's own ARP; three tries, 3 s each.
  let last = '';
  for (let i = 0; i < 3; i++) {
    const r = await rig!.exec(from, `ping -c1 -W3 ${to}`);
    if (r.status === 0) return undefined;
    last = `${from} -> ${to}: exit ${r.status} ${r.stdout}${r.stderr}`;
  }
  return last;
}

test.serial('two podman containers on a tether-vxlan node reach each other and a pod on the other node across the overlay', async (t) => {
  await rig!.run('a', net);
  await rig!.run('b', net);
  const [a, b] = [await address('a'), await address('b')];
  const subnet = parseCIDR(state.subnet)!;
  for (const ip of [a, b]) t.true(cidrContains(subnet, parseIP(ip)!), `${ip} is in the node subnet ${state.subnet}`);
  t.not(a, b);
  t.false(cidrContains(subnet, parseIP(remote.ip)!), 'the remote pod is on another node\'s subnet');
  for (const [from, to] of [['a', b], ['b', a], ['a', remote.ip], ['b', remote.ip]]) t.is(await ping(from, to), undefined);
  // And back: the remote pod reaches a podman container (routes and FDB in both directions).
  const back = await runIn(netnsPath(remote.netns), 'ping', ['-n', '-c', '1', '-W', '3', a], 10_000);
  t.is(back.status, 0, back.stdout + back.stderr);
});

test.serial('podman network inspect, the container interface and tether agree; the pod MTU is the overlay\'s', async (t) => {
  const [netInfo] = JSON.parse(await rig!.ok(['network', 'inspect', net]));
  t.is(netInfo.name, net);
  t.is(netInfo.driver, 'tether-vxlan');
  const info = await rig!.inspect('a');
  const p = info.NetworkSettings.Networks[net];
  t.is(p.IPPrefixLen, parseCIDR(state.subnet)!.prefix);
  Netlink.within(info.NetworkSettings.SandboxKey, (nl) => {
    const eth0 = nl.linkByName('eth0')!;
    t.is(eth0.mac, p.MacAddress);
    t.is(eth0.mtu, state.mtu, 'the container gets the overlay MTU tetherd published');
    t.deepEqual(nl.addrs({ family: 4, index: eth0.index }).map((x) => formatCIDR(x.cidr)), [`${p.IPAddress}/${p.IPPrefixLen}`]);
  });
  const held = (await reservations()).filter((r) => r.containerID === info.Id).map((r) => r.ip);
  t.deepEqual(held, [p.IPAddress]);
  // tether's own answer, as libcni cached it for podman.
  const result = JSON.parse(readFileSync(rig!.cacheRecord(net, info.Id), 'utf8')).result;
  const eth0 = result.interfaces.find((i: { name: string; sandbox?: string }) => i.name === 'eth0' && i.sandbox);
  t.like(eth0, { sandbox: info.NetworkSettings.SandboxKey, mac: p.MacAddress });
  t.deepEqual(result.ips.map((i: { address: string; gateway: string }) => [i.address, i.gateway]), [[`${p.IPAddress}/${p.IPPrefixLen}`, p.Gateway]]);
  t.is(p.Gateway, formatIP(addToIP(parseCIDR(state.subnet)!.ip, 1)!), 'the gateway is the node subnet\'s first address (on cni0)');
});

test.serial('cnictl status on the node: the podman network with its attachments and IPAM use, and tetherd running', async (t) => {
  const r = await cnictl('status', '--json', '--agent-state', vxlanFiles(lab!.nodes[0]).health);
  t.is(r.status, 0, r.stderr);
  const s = JSON.parse(r.stdout);
  t.like(s.networks.find((n: { name: string }) => n.name === net), { plugins: ['tether-vxlan'], attachments: 2, ipam: { rangeSets: [{ used: 2 }] } });
  t.like(s.agent, { state: 'running', pid: lab!.nodes[0].agentPid, details: { mode: 'vxlan', subnet: state.subnet } });
});

test.serial('a restarted container gets a working network (peer and remote pod) and still holds one address', async (t) => {
  const id = (await rig!.inspect('b')).Id;
  await rig!.ok(['restart', '-t', '0', 'b']);
  t.is(await ping('b', await address('a')), undefined);
  t.is(await ping('b', remote.ip), undefined);
  t.deepEqual((await reservations()).filter((x) => x.containerID === id).map((x) => x.ip), [await address('b')]);
});

test.serial('podman rm leaves no address reserved, no attachment record of tether-vxlan and no cache record', async (t) => {
  const ids = [(await rig!.inspect('a')).Id, (await rig!.inspect('b')).Id];
  t.is((await reservations()).length, 2);
  await rig!.ok(['rm', '-f', '-t', '0', 'a', 'b']);
  t.deepEqual(await reservations(), []);
  const records = join(rig!.dir, 'vxlan', net);
  t.deepEqual(existsSync(records) ? readdirSync(records) : [], [], 'tether-vxlan keeps no generated config of a removed container');
  for (const id of ids) t.false(existsSync(rig!.cacheRecord(net, id)));
  // The subnet is not left poisoned: a new container gets an address and crosses the overlay.
  const out = await rig!.runOnce(net, `ping -c1 -W3 ${remote.ip}`);
  t.regex(out, /1 packets received/);
  t.deepEqual(await reservations(), []);
});
