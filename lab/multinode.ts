import { closeSync, existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { CniRuntime } from '../lib/libcni/runtime.js';
import { parseNetworkList } from '../lib/libcni/conf.js';
import { runIn } from '../conformance/spawn.js';
import { startEtcd } from '../conformance/etcd.js';
import { parseCIDR } from '../lib/ip/addr.js';
import { Netlink } from '../lib/netlink/handle.js';
import { IFA_F_NODAD } from '../lib/netlink/constants.js';
import { createNamedNetns, deleteNamedNetns, listNamedNetns, netnsPath, openNetns } from '../lib/netns/netns.js';
import { sysctlSet } from '../lib/netns/sysctl.js';
import { inNetns } from '../lib/netns/netns.js';
import { alive, argvOf, spawnDaemon, stopPid } from './procs.js';
import { EtcdKV } from '../lib/store/etcd.js';
import { paced } from '../lib/pace.js';
import { driverFor } from './modes.js';
import type { LabNode, LabPod, LabState } from './types.js';

export type { LabNode, LabPod, LabState } from './types.js';
export { driverFor, modes, registerMode, type ModeDriver } from './modes.js';

// A cluster of N "nodes" on one machine: each node a network namespace with eth0 on one underlay
// bridge (in its own namespace, addresses from 198.18.0.0/15), a real etcd every node reaches over a
// Unix socket, and pods (namespaces) attached through the node's CNI network. How nodes are wired into
// an overlay is the mode's business (lab/vxlan.ts, lab/bgp.ts, each registering itself in lab/modes.ts;
// lab/index.ts loads them): this module only builds and removes nodes, pods and etcd, and tests
// connectivity.
//
// Everything is described by a LabState written to <dir>/lab.json, so `cnictl lab down` in another
// process removes what `cnictl lab up` made: namespaces by exact name, processes by PID.

/** Waits until the mode says every node reaches every other node's subnet: timeoutMs on an idle machine, proportionally more on a busy one. */
export async function waitConverged(lab: LabState, timeoutMs = 20_000): Promise<void> {
  const d = await driverFor(lab.mode);
  const t0 = Date.now();
  for (;;) {
    if (d.converged(lab)) return;
    // Judged by how busy the machine is at the end of the wait, not at its start.
    if (Date.now() - t0 >= paced(timeoutMs)) break;
    await new Promise((r) => setTimeout(r, 20));
  }
  throw new Error(`the ${lab.mode} overlay did not converge within ${((Date.now() - t0) / 1000).toFixed(1)} s (${timeoutMs / 1000} s on an idle machine)`);
}

export interface LabOptions {
  nodes: number;
  podsPerNode: number;
  mode: string;
  /** Lab directory; must not hold a lab already. */
  dir: string;
  modeOptions?: Record<string, unknown>;
  /** The tether binary; by default the running one (compiled) or dist/bin/tether (under Node). */
  bin?: string;
  pool?: string;
}

/** The tether binary to run agents and plugins from. */
export function defaultBinary(): string {
  if ('Bun' in globalThis) return process.execPath;
  return fileURLToPath(new URL('../../dist/bin/tether', import.meta.url));
}

const stateFile = (dir: string) => join(dir, 'lab.json');

export function saveLab(lab: LabState): void {
  writeFileSync(stateFile(lab.dir), `${JSON.stringify(lab, null, 2)}\n`);
}

export function loadLab(dir: string): LabState | undefined {
  try { return JSON.parse(readFileSync(stateFile(dir), 'utf8')) as LabState; } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw e;
  }
}

export function newNetns(lab: LabState, name: string): string {
  lab.namespaces.push(name);
  const path = createNamedNetns(name);
  Netlink.within(path, (nl) => { const lo = nl.linkByName('lo')!; nl.linkSet(lo.index, { up: true }); });
  return path;
}

/** fn with a netlink handle in the node's namespace. */
export function onNode<T>(node: LabNode, fn: (nl: Netlink) => T): T {
  return Netlink.within(netnsPath(node.netns), fn);
}

/** Underlay addresses of node i (1-based): 198.18.0.10+i/24 and 2001:db8:18::10+i/64 (for an IPv6 underlay). */
const nodeIP = (i: number) => `198.18.0.${10 + i}`;
const nodeIP6 = (i: number) => `2001:db8:18::${(10 + i).toString(16)}`;

/** A namespace's eth0 on the underlay bridge (the bridge end named `port`), with its addresses, up. */
export function plugIntoUnderlay(lab: LabState, path: string, port: string, ip4: string, ip6: string): void {
  const fd = openNetns(path);
  try {
    Netlink.within(netnsPath(lab.underlay.netns), (nl) => {
      const br = nl.linkByName(lab.underlay.bridge)!;
      nl.linkAdd({ kind: 'veth', name: port, master: br.index, up: true, peer: { name: 'eth0', netnsFd: fd } });
    });
  } finally { closeSync(fd); }
  Netlink.within(path, (nl) => {
    const eth0 = nl.linkByName('eth0')!;
    nl.addrAdd(eth0.index, parseCIDR(`${ip4}/${lab.underlay.prefix}`)!);
    // No DAD: a tentative address cannot be bound, and an agent starting at once would fail on it.
    nl.addrAdd(eth0.index, parseCIDR(`${ip6}/64`)!, { flags: IFA_F_NODAD });
    nl.linkSet(eth0.index, { up: true });
  });
}

/** Creates the node namespace with eth0 on the underlay bridge, without starting anything in it. */
export function createNode(lab: LabState, i: number): LabNode {
  const name = `n${i}`;
  const netns = `${lab.prefix}-${name}`;
  const path = newNetns(lab, netns);
  const node: LabNode = { name, netns, underlayIP: nodeIP(i), underlayIP6: nodeIP6(i), dir: join(lab.dir, name) };
  mkdirSync(node.dir, { recursive: true });
  plugIntoUnderlay(lab, path, name, node.underlayIP, node.underlayIP6);
  inNetns(path, () => sysctlSet('net/ipv4/ip_forward', 1));
  lab.nodes.push(node);
  return node;
}

async function runtimeFor(lab: LabState, node: LabNode): Promise<CniRuntime> {
  const extra = (await driverFor(lab.mode)).pluginDirs ?? [];
  return new CniRuntime({ path: [join(lab.bin, '..'), ...extra], cacheDir: join(node.dir, 'cache'), timeoutMs: 30_000, pluginNetns: netnsPath(node.netns) });
}

async function networkFor(lab: LabState, node: LabNode) {
  const d = await driverFor(lab.mode);
  return parseNetworkList(Buffer.from(JSON.stringify(d.podNetwork(lab, node))));
}

/** A pod on the node: a namespace attached through the node's pod network (the CNI plugin, exec'd). */
export async function addPod(lab: LabState, node: LabNode): Promise<LabPod> {
  const k = lab.pods.filter((p) => p.node === node.name).length + 1;
  let name = `${node.name}p${k}`;
  for (let j = k; lab.pods.some((p) => p.name === name); j++) name = `${node.name}p${j + 1}`;
  const netns = `${lab.prefix}-${name}`;
  const path = newNetns(lab, netns);
  const containerID = `${lab.prefix}-${name}`;
  const result = await (await runtimeFor(lab, node)).add(await networkFor(lab, node), { containerID, netns: path, ifname: 'eth0' });
  const ip = result.ips?.[0]?.address.split('/')[0];
  if (!ip) throw new Error(`pod ${name}: the plugin returned no address`);
  const pod = { name, node: node.name, netns, containerID, ip };
  lab.pods.push(pod);
  return pod;
}

export async function removePod(lab: LabState, pod: LabPod): Promise<void> {
  const node = lab.nodes.find((n) => n.name === pod.node)!;
  await (await runtimeFor(lab, node)).del(await networkFor(lab, node), { containerID: pod.containerID, netns: netnsPath(pod.netns), ifname: 'eth0' });
  deleteNamedNetns(pod.netns);
  lab.pods.splice(lab.pods.indexOf(pod), 1);
  lab.namespaces.splice(lab.namespaces.indexOf(pod.netns), 1);
}

/**
 * Builds the whole lab: underlay, etcd, nodes with their agents, pods. On any failure everything
 * made so far is removed before the error is passed on.
 */
export async function labUp(o: LabOptions): Promise<LabState> {
  if (loadLab(o.dir)) throw new Error(`${o.dir} already holds a lab: run "cnictl lab down" first`);
  if (!(o.nodes >= 1 && o.nodes <= 200)) throw new Error('--nodes must be from 1 to 200');
  const driver = await driverFor(o.mode);
  mkdirSync(o.dir, { recursive: true });
  const lab: LabState = {
    prefix: `${driver.namePrefix ?? 'tvx'}${Buffer.from(crypto.getRandomValues(new Uint8Array(3))).toString('hex')}`,
    dir: o.dir, mode: driver.name, modeOptions: o.modeOptions ?? {}, bin: o.bin ?? defaultBinary(),
    underlay: { netns: '', bridge: 'br0', prefix: 24 }, etcd: { pid: 0, endpoint: '', dir: '' },
    pool: o.pool ?? '10.244.0.0/16', nodes: [], pods: [], namespaces: [],
  };
  if (!existsSync(lab.bin)) throw new Error(`the tether binary ${lab.bin} does not exist (npm run build)`);
  saveLab(lab);
  try {
    lab.underlay.netns = `${lab.prefix}-ul`;
    const ul = newNetns(lab, lab.underlay.netns);
    Netlink.within(ul, (nl) => nl.linkAdd({ kind: 'bridge', name: lab.underlay.bridge, up: true, bridge: { stpState: 0, forwardDelay: 0 } }));
    // A mode on "store": "peers" runs without etcd: none is started.
    if (lab.modeOptions.store !== 'peers') {
      const etcd = await startEtcd({ unix: true, detached: true });
      lab.etcd = { pid: etcd.pid, endpoint: etcd.endpoint, dir: etcd.dir };
    }
    saveLab(lab);
    if (driver.setup) { await driver.setup(lab); saveLab(lab); }
    for (let i = 1; i <= o.nodes; i++) createNode(lab, i);
    saveLab(lab);
    for (const node of lab.nodes) { await driver.startNode(lab, node); saveLab(lab); }
    await waitConverged(lab);
    for (const node of lab.nodes) for (let k = 0; k < o.podsPerNode; k++) { await addPod(lab, node); saveLab(lab); }
    // Pods may have brought new routes (BGP: each node's first pod claims a block): wait for them too.
    await waitConverged(lab);
    return lab;
  } catch (e) {
    await labDown(lab);
    throw e;
  }
}

/** Adds one more node (agent started) to a running lab; returns it. */
export async function joinNewNode(lab: LabState): Promise<LabNode> {
  const i = Math.max(0, ...lab.nodes.map((n) => Number(n.name.slice(1)))) + 1;
  const node = createNode(lab, i);
  saveLab(lab);
  await (await driverFor(lab.mode)).startNode(lab, node);
  saveLab(lab);
  await waitConverged(lab);
  return node;
}

/**
 * Restarts etcd on the same data and socket (every agent's watch stream breaks and must resume).
 * `whileDown` runs between the stop and the start.
 */
export async function restartEtcd(lab: LabState, whileDown: () => Promise<void> = async () => {}): Promise<void> {
  const argv = argvOf(lab.etcd.pid);
  if (!argv || !alive(lab.etcd.pid, 'etcd')) throw new Error(`etcd (pid ${lab.etcd.pid}) is not running`);
  await stopPid(lab.etcd.pid, 'etcd');
  await whileDown();
  lab.etcd.pid = spawnDaemon(undefined, argv[0], argv.slice(1), join(lab.etcd.dir, 'etcd.log'), lab.etcd.dir);
  saveLab(lab);
  const kv = new EtcdKV({ endpoints: [lab.etcd.endpoint], prefix: '/probe/', timeoutMs: 500 });
  for (const until = Date.now() + 15_000; Date.now() < until;) {
    try { await kv.get('x'); return; } catch { await new Promise((r) => setTimeout(r, 100)); }
  }
  throw new Error('etcd did not come back within 15 s');
}

/** Removes everything the lab made: agents and etcd by PID, namespaces by exact name, its directory. Returns what is left (must be nothing). */
export async function labDown(lab: LabState): Promise<string[]> {
  const driver = await driverFor(lab.mode).catch(() => undefined);
  for (const node of lab.nodes) {
    try { if (driver) await driver.stopNode(lab, node); } catch { /* keep going */ }
  }
  try { await driver?.teardown?.(lab); } catch { /* keep going */ }
  if (lab.etcd.pid) await stopPid(lab.etcd.pid, 'etcd');
  for (const ns of [...lab.namespaces].reverse()) { try { deleteNamedNetns(ns); } catch { /* keep going */ } }
  if (lab.etcd.dir) rmSync(lab.etcd.dir, { recursive: true, force: true });
  rmSync(lab.dir, { recursive: true, force: true });
  return listNamedNetns().filter((n) => n.startsWith(`${lab.prefix}-`));
}

/** Pings pod to pod (one ICMP echo, 1 s) for every ordered pair; reachable[i][j]: pods[i] reached pods[j]. */
export async function connectivity(lab: LabState, pods = lab.pods): Promise<boolean[][]> {
  const pairs: [number, number][] = [];
  for (let i = 0; i < pods.length; i++) for (let j = 0; j < pods.length; j++) if (i !== j) pairs.push([i, j]);
  const out = pods.map((_, i) => pods.map((__, j) => i === j));
  // A few at a time: 2 cores are shared, and a ping that waits on a loaded machine is not a lost ping.
  for (let k = 0; k < pairs.length; k += 8) {
    await Promise.all(pairs.slice(k, k + 8).map(async ([i, j]) => {
      out[i][j] = await ping(pods[i].netns, pods[j].ip);
    }));
  }
  return out;
}

export async function ping(netns: string, ip: string, extra: string[] = []): Promise<boolean> {
  for (let attempt = 0; attempt < 3; attempt++) {
    const r = await runIn(netnsPath(netns), 'ping', ['-n', '-c', '1', '-W', '1', ...extra, ip], 5000);
    if (r.status === 0) return true;
  }
  return false;
}

/** `status`: the lab as data (the documented --json shape). */
export async function labStatus(lab: LabState) {
  const driver = await driverFor(lab.mode);
  return {
    mode: lab.mode,
    prefix: lab.prefix,
    etcd: lab.etcd.endpoint,
    nodes: lab.nodes.map((n) => ({ name: n.name, netns: n.netns, underlayIP: n.underlayIP, subnet: driver.subnetOf(lab, n) ?? null, agentPid: n.agentPid ?? null })),
    pods: lab.pods.map((p) => ({ name: p.name, node: p.node, netns: p.netns, ip: p.ip })),
  };
}

export function formatMatrix(pods: LabPod[], m: boolean[][]): string {
  const w = Math.max(4, ...pods.map((p) => p.name.length));
  const head = `${'from\\to'.padEnd(w + 2)}${pods.map((p) => p.name.padStart(w + 1)).join('')}`;
  const rows = pods.map((p, i) => `${p.name.padEnd(w + 2)}${m[i].map((ok, j) => (i === j ? '-' : ok ? 'ok' : 'FAIL').padStart(w + 1)).join('')}`);
  return [head, ...rows].join('\n');
}
