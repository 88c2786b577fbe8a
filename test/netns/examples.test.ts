import test from 'ava';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseNetworkList, type NetworkList } from '../../lib/libcni/conf.js';
import { connect, withServer } from '../../conformance/cases/dataplane.js';
import { startEtcd, type EtcdServer } from '../../conformance/etcd.js';
import { runConformance } from '../../conformance/harness.js';
import { Lab } from '../../conformance/lab.js';
import { runIn } from '../../conformance/spawn.js';
import { CniRuntime } from '../../lib/libcni/runtime.js';
import { createNode, labDown, labUp, ping, saveLab, waitConverged } from '../../lab/index.js';
import { spawnDaemon } from '../../lab/procs.js';
import { createNamedNetns, netnsPath } from '../../lib/netns/netns.js';
import { parseAgentConfig } from '../../tetherd/config.js';
import { parseObserveConfig } from '../../tetherd/observe.js';
import { readNodeState } from '../../lib/node-state.js';

// Every file in examples/ is exercised here: a file with no case below fails the first test, so an
// example can never rot unnoticed. Paths the examples name for a real node (log file) are moved into a
// temporary directory; IPAM data is moved by the harness itself.
const examples = fileURLToPath(new URL('../../../examples/', import.meta.url));
const dist = fileURLToPath(new URL('../../../dist/bin/', import.meta.url));
const tmp = mkdtempSync(join(tmpdir(), 'tether-examples-'));
test.after.always(() => rmSync(tmp, { recursive: true, force: true }));

type Plugin = Record<string, any>;
function load(file: string, change: (p: Plugin) => Plugin = (p) => p): NetworkList {
  const raw = JSON.parse(readFileSync(join(examples, file), 'utf8'));
  raw.plugins = raw.plugins.map((p: Plugin) => change(p.log ? { ...p, log: { ...p.log, file: join(tmp, `${file}.log`) } } : p));
  return parseNetworkList(Buffer.from(JSON.stringify(raw)), join(examples, file));
}

async function conformance(t: any, list: NetworkList, path: string[], mustRun: string[]) {
  const report = await runConformance({ list, path });
  t.deepEqual(report.cases.filter((c) => c.status === 'fail').map((c) => `${c.id}: ${c.message ?? ''}`), []);
  for (const id of mustRun) t.is(report.cases.find((c) => c.id === id)?.status, 'pass', `${id} must run and pass`);
  t.deepEqual(report.leftovers, []);
}

const covered = ['tether-bridge.conflist', 'tether-bridge-host-local.conflist', 'tether-bridge-portmap.conflist', 'tether-ipam-etcd.conflist', 'tether-bgp-route.conflist', 'tether-vxlan.conflist', 'tetherd-vxlan.json'];
/** tetherd's configurations (the rest are network lists). */
const isAgentConfig = (f: string) => f.startsWith('tetherd-');

test('every example has a test, and every example is a valid network list or tetherd config', (t) => {
  const files = readdirSync(examples).filter((f) => /\.(conflist|conf|json)$/.test(f)).sort();
  t.deepEqual(files, [...covered].sort());
  for (const f of files.filter((x) => !isAgentConfig(x))) t.notThrows(() => load(f), f);
  for (const f of files.filter(isAgentConfig)) {
    const raw = JSON.parse(readFileSync(join(examples, f), 'utf8'));
    t.notThrows(() => { parseAgentConfig(raw); parseObserveConfig(raw); }, f);
  }
});

test('examples/tetherd-vxlan.json runs tetherd on a lab node; pods on examples/tether-vxlan.conflist there reach a pod on another node, and it passes conformance', async (t) => {
  const lab = await labUp({ nodes: 1, podsPerNode: 1, mode: 'vxlan', dir: join(tmp, 'lab') });
  try {
    const [remote] = lab.pods;
    // A second node whose tetherd runs on the example as written, but for what names this machine's
    // cluster: etcd, network (the lab's keys), node name and the paths of its files.
    const node = createNode(lab, 2);
    saveLab(lab);
    const example = JSON.parse(readFileSync(join(examples, 'tetherd-vxlan.json'), 'utf8'));
    const state = join(node.dir, 'vxlan.json');
    const config = {
      ...example, network: 'lab', nodeName: node.name, stateFile: state, logFile: join(node.dir, 'tetherd.log'),
      etcd: { endpoints: [lab.etcd.endpoint], prefix: `/${lab.prefix}`, timeoutMs: example.etcd.timeoutMs },
      observe: { ...example.observe, healthFile: join(node.dir, 'health.json'), confDir: join(node.dir, 'net.d'), opLog: join(node.dir, 'cni.log') },
    };
    writeFileSync(join(node.dir, 'tetherd.json'), JSON.stringify(config));
    node.agentPid = spawnDaemon(netnsPath(node.netns), join(dist, 'tetherd'), ['--config', join(node.dir, 'tetherd.json')], join(node.dir, 'stdout.log'));
    saveLab(lab);
    await waitConverged(lab);
    const s = readNodeState(state)!;
    t.like(s, { node: 'n2', vni: example.vni, device: `tether.${example.vni}`, mtu: 1500 - 50 });
    t.regex(s.subnet, /^10\.244\.\d+\.0\/24$/);
    // Written once start-up is complete, which may be just after the other node has routed this one.
    for (const until = Date.now() + 10_000; !existsSync(config.observe.healthFile) && Date.now() < until;) await new Promise((res) => setTimeout(res, 50));
    t.like(JSON.parse(readFileSync(config.observe.healthFile, 'utf8')), { pid: node.agentPid, subnet: s.subnet, metrics: example.observe.metricsAddress });

    const list = load('tether-vxlan.conflist', (p) => ({ ...p, stateFile: state, dataDir: join(node.dir, 'cni') }));
    // On the node, as its runtime would: a pod reaches the pod on n1 across the overlay.
    const runtime = new CniRuntime({ path: [dist], cacheDir: join(node.dir, 'cache'), timeoutMs: 30_000, pluginNetns: netnsPath(node.netns) });
    const podNs = `${lab.prefix}-expod`;
    lab.namespaces.push(podNs);
    saveLab(lab);
    const pod = { containerID: 'example-pod', netns: createNamedNetns(podNs), ifname: 'eth0' };
    const r = await runtime.add(list, pod);
    t.true(r.ips![0].address.startsWith(s.subnet.split('.').slice(0, 3).join('.') + '.'), r.ips![0].address);
    t.true(await ping(podNs, remote.ip), `the example's pod reaches ${remote.ip} on n1`);
    await runtime.del(list, pod);

    // The plugin's own conformance, in the harness's throwaway host namespace, on the subnet this tetherd published.
    const report = await runConformance({ list, path: [dist] });
    t.deepEqual(report.cases.filter((c) => c.status === 'fail').map((c) => `${c.id}: ${c.message ?? ''}`), []);
    for (const id of ['reach-gateway', 'pod-to-pod', 'concurrent-adds', 'del-leaves-nothing']) t.is(report.cases.find((c) => c.id === id)?.status, 'pass', `${id} must run and pass`);
    t.deepEqual(report.leftovers, []);
  } finally {
    t.deepEqual(await labDown(lab), []);
  }
});

test('examples/tether-bridge.conflist passes conformance and logs each operation', async (t) => {
  await conformance(t, load('tether-bridge.conflist'), [dist], ['ipmasq', 'hairpin', 'pod-to-pod', 'del-leaves-nothing']);
  const ops = readFileSync(join(tmp, 'tether-bridge.conflist.log'), 'utf8').split('\n').filter(Boolean).map((l) => JSON.parse(l)).filter((l) => l.msg === 'operation');
  t.true(ops.some((o) => o.command === 'ADD' && o.result === 'ok'));
  t.true(ops.some((o) => o.command === 'ADD' && o.result === 'error' && o.error.code === 7), 'the error cases are logged with their code');
});

test('examples/tether-bridge-host-local.conflist passes conformance with the reference host-local', async (t) => {
  await conformance(t, load('tether-bridge-host-local.conflist'), [dist, '/usr/lib/cni'], ['reach-gateway', 'pod-to-pod', 'ipmasq']);
});

test('examples/tether-bgp-route.conflist passes conformance: routed pods, no bridge, no NAT', async (t) => {
  const report = await runConformance({ list: load('tether-bgp-route.conflist'), path: [dist] });
  t.deepEqual(report.cases.filter((c) => c.status === 'fail').map((c) => `${c.id}: ${c.message ?? ''}`), []);
  for (const id of ['reach-gateway', 'pod-to-pod', 'concurrent-adds', 'del-leaves-nothing']) t.is(report.cases.find((c) => c.id === id)?.status, 'pass', `${id} must run and pass`);
  // A routed network has no bridge to hairpin on and masquerades nothing: those cases must say so.
  for (const id of ['hairpin', 'ipmasq']) t.is(report.cases.find((c) => c.id === id)?.status, 'skip', `${id} does not apply`);
  t.deepEqual(report.leftovers, []);
});

let etcd: EtcdServer | undefined;
test.after.always(async () => { await etcd?.stop(); });

test('examples/tether-ipam-etcd.conflist passes conformance against a real etcd', async (t) => {
  // A Unix socket, because the plugins run in a throwaway host namespace whose loopback is not ours.
  etcd = await startEtcd({ unix: true });
  const list = load('tether-ipam-etcd.conflist', (p) => ({ ...p, ipam: { ...p.ipam, etcd: { ...p.ipam.etcd, endpoints: [etcd!.endpoint], prefix: `/examples-${process.pid}` } } }));
  await conformance(t, list, [dist], ['concurrent-adds', 'pod-to-pod', 'del-leaves-nothing']);
});

test('examples/tether-bridge-portmap.conflist: portmap after tether-bridge forwards a host port to the container', async (t) => {
  const list = load('tether-bridge-portmap.conflist');
  // The chain as a whole, without port mappings (portmap then only passes the result on).
  await conformance(t, list, [dist, '/usr/lib/cni'], ['add-result@1.0.0', 'pod-to-pod']);

  const lab = new Lab(list, [dist, '/usr/lib/cni']);
  try {
    const out = lab.newOutside();
    const c = lab.newContainer();
    const spec = { ...lab.spec(c), capabilityArgs: { portMappings: [{ hostPort: 18080, containerPort: 8080, protocol: 'tcp' }] } };
    const result = await lab.runtime.add(lab.list, spec);
    const podIP = result.ips![0].address.split('/')[0];
    await withServer(c.path, podIP, [], async () => {
      // From a machine outside the node, and from the node itself, to the node's address and the host port.
      for (const [from, ns] of [['outside', out.path], ['host', lab.host]] as const) {
        const r = await connect(ns, 'tcp', out.hostIP, [], 18080);
        t.is(r.status, 0, `${from}: ${r.stdout}${r.stderr}`);
      }
      // A port that is not mapped is not forwarded: the success above is the mapping's doing.
      const unmapped = await connect(out.path, 'tcp', out.hostIP, [], 18081);
      t.not(unmapped.status, 0);
    }, 8080);
    const nat = async () => (await runIn(lab.host, 'iptables-save', ['-t', 'nat'])).stdout;
    t.regex(await nat(), /--dport 18080/, 'portmap wrote its DNAT rule in the lab host namespace');
    await lab.runtime.del(lab.list, spec);
    t.notRegex(await nat(), /--dport 18080/, 'DEL removed the mapping');
  } finally { lab.close(); }
  t.deepEqual(lab.leftovers(), []);
});
