import { spawnSync } from 'node:child_process';
import { rmSync, writeFileSync } from 'node:fs';
import { cpus } from 'node:os';
import { fileURLToPath } from 'node:url';
import { dirname, join, resolve } from 'node:path';
import { loadNetworkList, type NetworkList } from '../lib/libcni/conf.js';
import { Lab } from '../conformance/lab.js';
import { stats, ms, type Stats } from './stats.js';
import { buildFloorBinary } from './floor.js';
import { childrenCpuMs } from './cpu.js';

// `npm run bench`: tether against the reference plugins, interleaved in one run so drift hits both.

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
const N = Number(process.env.BENCH_N ?? 50);
const WARMUP = 3;
const SETTLE_MS = Number(process.env.BENCH_SETTLE_MS ?? 15_000);
const REF = '/usr/lib/cni';
const DIST = join(root, 'dist', 'bin');

interface Row { name: string; a: string; b: string; sa: Stats; sb: Stats; unit: string }
const rows: Row[] = [];

function timeOnce(file: string, args: string[], env: NodeJS.ProcessEnv, input = ''): number {
  const t = process.hrtime.bigint();
  const r = spawnSync(file, args, { env, input, stdio: ['pipe', 'ignore', 'ignore'] });
  if (r.status !== 0) throw new Error(`${file} ${args.join(' ')} exited ${r.status}`);
  return Number(process.hrtime.bigint() - t) / 1e6;
}

/** Two commands run alternately, A B A B ..., after warm-ups. */
function interleave(a: () => number, b: () => number): [number[], number[]] {
  for (let i = 0; i < WARMUP; i++) { a(); b(); }
  const sa: number[] = [];
  const sb: number[] = [];
  for (let i = 0; i < N; i++) { sa.push(a()); sb.push(b()); }
  return [sa, sb];
}

function startup(): void {
  // Runtimes often pass NODE_EXTRA_CA_CERTS on; it must not matter to a Bun binary, so keep it set.
  const env = { ...process.env, CNI_COMMAND: 'VERSION' };
  const [sa, sb] = interleave(
    () => timeOnce(join(DIST, 'cnictl'), ['--version'], env),
    () => timeOnce(join(REF, 'bridge'), [], env, '{"cniVersion":"1.0.0"}'),
  );
  rows.push({ name: 'start-up (exec to exit)', a: 'tether: cnictl --version', b: 'reference: bridge VERSION', sa: stats(sa), sb: stats(sb), unit: 'ms' });
  const rss = (file: string, args: string[], input = '') => {
    const r = spawnSync(process.execPath, [fileURLToPath(new URL('./rss.js', import.meta.url)), '20', file, ...args], { env: { ...env, BENCH_STDIN: input }, encoding: 'utf8' });
    return Number(r.stdout.trim()) / 1024;
  };
  const ra = rss(join(DIST, 'cnictl'), ['--version']);
  const rb = rss(join(REF, 'bridge'), [], '{"cniVersion":"1.0.0"}');
  rows.push({ name: 'peak RSS of that exec', a: 'tether: cnictl --version', b: 'reference: bridge VERSION', sa: stats([ra]), sb: stats([rb]), unit: 'MiB' });
  // What no tether code can go below: a Bun-compiled hello world, built with our flags.
  const hello = buildFloorBinary(root);
  const [fa, fb] = interleave(
    () => timeOnce(hello, [], env),
    () => timeOnce(join(REF, 'bridge'), [], env, '{"cniVersion":"1.0.0"}'),
  );
  rows.push({ name: 'runtime floor: start-up', a: 'Bun hello world (our flags)', b: 'reference: bridge VERSION', sa: stats(fa), sb: stats(fb), unit: 'ms' });
  rows.push({ name: 'runtime floor: peak RSS', a: 'Bun hello world (our flags)', b: 'reference: bridge VERSION', sa: stats([rss(hello, [])]), sb: stats([rb]), unit: 'MiB' });
  // The CPU one exec costs before any of our code runs, beside a Go plugin's whole VERSION: what sets
  // the floor of a CPU-bound burst.
  const cpuOf = (run: () => number) => { const c = childrenCpuMs(); for (let i = 0; i < N; i++) run(); return (childrenCpuMs() - c) / N; };
  const [ca, cb] = [cpuOf(() => timeOnce(hello, [], env)), cpuOf(() => timeOnce(join(REF, 'bridge'), [], env, '{"cniVersion":"1.0.0"}'))];
  rows.push({ name: 'runtime floor: CPU per exec (user+sys)', a: 'Bun hello world (our flags)', b: 'reference: bridge VERSION', sa: stats([ca]), sb: stats([cb]), unit: 'ms' });
  rmSync(dirname(hello), { recursive: true, force: true });
}

/** Capability arguments (runtimeConfig) for the i-th container of a run, or none. */
type Caps = ((i: number) => Record<string, unknown>) | undefined;

/** One sample: exec wall time of the chain, and the CPU of its whole process tree (an IPAM plugin it exec'd included). */
interface Sample { add: number; del: number; addCpu: number; delCpu: number }

/** One ADD+DEL sample: a fresh container namespace, plugin exec times only (setup is not timed). */
async function sample(lab: Lab, caps?: Caps): Promise<Sample> {
  const c = lab.newContainer();
  const spec = { ...lab.spec(c), ...(caps ? { capabilityArgs: caps(0) } : {}) };
  let cpu = childrenCpuMs();
  await lab.runtime.add(lab.list, spec);
  const addCpu = childrenCpuMs() - cpu;
  const add = lab.runtime.lastExecs.reduce((s, e) => s + e.ms, 0);
  cpu = childrenCpuMs();
  await lab.runtime.del(lab.list, spec);
  const delCpu = childrenCpuMs() - cpu;
  const del = lab.runtime.lastExecs.reduce((s, e) => s + e.ms, 0);
  lab.removeContainer(c);
  return { add, del, addCpu, delCpu };
}

/** ADD and DEL of two networks, each in its own throwaway host namespace, interleaved. */
async function addDel(label: string, listA: NetworkList, pathA: string[], listB: NetworkList, pathB: string[], caps?: Caps): Promise<void> {
  const labA = new Lab(listA, pathA);
  const labB = new Lab(listB, pathB);
  try {
    for (let i = 0; i < WARMUP; i++) { await sample(labA, caps); await sample(labB, caps); }
    const a: Sample[] = [];
    const b: Sample[] = [];
    for (let i = 0; i < N; i++) { a.push(await sample(labA, caps)); b.push(await sample(labB, caps)); }
    const names = [listA.plugins.map((p) => p.type).join('+'), listB.plugins.map((p) => p.type).join('+')];
    const row = (name: string, f: (x: Sample) => number) => rows.push({ name, a: names[0], b: names[1], sa: stats(a.map(f)), sb: stats(b.map(f)), unit: 'ms' });
    row(`${label} ADD`, (x) => x.add);
    row('  ADD CPU (user+sys, process tree)', (x) => x.addCpu);
    row(`${label} DEL`, (x) => x.del);
    row('  DEL CPU (user+sys, process tree)', (x) => x.delCpu);
  } finally {
    labA.close();
    labB.close();
  }
}

/**
 * ADD latency with `many` containers on the node against the same with one, on two nodes (throwaway
 * host namespaces) sampled alternately: this VM's speed drifts by tens of percent over minutes, which
 * measuring one count after the other would take for growth.
 */
async function scale(list: NetworkList, path: string[], many: number, caps?: Caps, label = ''): Promise<void> {
  const one = new Lab(list, path);
  const full = new Lab(list, path);
  const keep = async (lab: Lab, i: number) => {
    const c = lab.newContainer();
    await lab.runtime.add(lab.list, { ...lab.spec(c), ...(caps ? { capabilityArgs: caps(i) } : {}) });
  };
  try {
    await keep(one, 1);
    for (let i = 1; i <= many; i++) await keep(full, i);
    // 500 namespaces just born keep the kernel busy for a while (each new interface's IPv6 duplicate
    // address detection, router solicitations at 4 s intervals, MLD reports, flooded over the bridge):
    // measure the node with 500 containers on it, not the seconds after they arrived.
    await new Promise((r) => setTimeout(r, SETTLE_MS));
    for (let i = 0; i < WARMUP; i++) { await sample(one, caps); await sample(full, caps); }
    const a: number[] = [];
    const b: number[] = [];
    for (let i = 0; i < N; i++) { b.push((await sample(one, caps)).add); a.push((await sample(full, caps)).add); }
    const name = list.plugins.map((p) => p.type).join('+');
    rows.push({ name: `ADD${label} with ${many} attached vs 1`, a: `${name}, ${many} attached`, b: `${name}, 1 attached`, sa: stats(a), sb: stats(b), unit: 'ms' });
  } finally { one.close(); full.close(); }
}

function rssOfAdd(network: string, path: string): number {
  const r = spawnSync(process.execPath, [fileURLToPath(new URL('./rss-add.js', import.meta.url)), benchNets, network, path, '10'], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`rss-add ${network}: ${r.stderr}`);
  return Number(r.stdout.trim()) / 1024;
}

function print(): void {
  const head = ['measure', 'A', 'B', 'A median', 'A p95', 'B median', 'B p95', 'A/B (median)'];
  const body = rows.map((r) => [r.name, r.a, r.b, `${ms(r.sa.median)} ${r.unit}`, r.sa.n > 1 ? ms(r.sa.p95) : '-', `${ms(r.sb.median)} ${r.unit}`, r.sb.n > 1 ? ms(r.sb.p95) : '-', `${(r.sa.median / r.sb.median).toFixed(2)}x`]);
  const w = head.map((h, i) => Math.max(h.length, ...body.map((r) => r[i].length)));
  const line = (c: string[]) => `| ${c.map((x, i) => x.padEnd(w[i])).join(' | ')} |`;
  process.stdout.write(`\ntether bench: N=${N} per side, interleaved, ${WARMUP} warm-ups; ${new Date().toISOString()}\n`);
  process.stdout.write(`${line(head)}\n| ${w.map((x) => '-'.repeat(x)).join(' | ')} |\n${body.map(line).join('\n')}\n`);
}

const benchNets = join(root, 'bench', 'networks');
const tetherPath = [DIST];
const only = process.env.BENCH_ONLY?.split(',');
const want = (k: string) => !only || only.includes(k);
/** Sections that threw: the table still prints what the others measured, and the run exits non-zero. */
const failed: string[] = [];
async function section(key: string, run: () => unknown): Promise<void> {
  if (!want(key)) return;
  try { await run(); } catch (e) {
    failed.push(`${key}: ${(e as Error).stack ?? String(e)}`);
    process.stderr.write(`bench: section ${key} failed: ${(e as Error).message}\n`);
  }
}
await section('startup', async () => { startup(); });
await section('adddel', async () => { await addDel('tether vs reference', loadNetworkList(benchNets, 'bench-tether-plain'), tetherPath, loadNetworkList(benchNets, 'bench-ref-plain'), [REF]); });
// Routed (L3) attachments: tether-bgp-route against the closest reference plugin, ptp (also a veth with no bridge and host routes).
await section('l3', async () => { await addDel('routed (L3): tether vs reference', loadNetworkList(benchNets, 'bench-tether-l3'), tetherPath, loadNetworkList(benchNets, 'bench-ref-ptp'), [REF]); });
await section('masq', async () => { await addDel('with ipMasq: tether vs reference', loadNetworkList(benchNets, 'bench-tether-masq'), tetherPath, loadNetworkList(benchNets, 'bench-ref-masq'), [REF]); });
await section('etcd', async () => {
  // The same plugin and network, IPAM state in etcd (over a Unix socket: the plugins run in the lab's host namespace) vs the embedded store.
  const { startEtcd } = await import('../conformance/etcd.js');
  const server = await startEtcd({ unix: true });
  try {
    const embedded = loadNetworkList(benchNets, 'bench-tether-plain');
    const raw = JSON.parse(embedded.bytes.toString());
    raw.name = 'bench-tether-etcd';
    raw.plugins[0].ipam.etcd = { endpoints: [server.endpoint], prefix: `/bench${process.pid}` };
    raw.plugins[0].bridge = 'btbr-etcd';
    const { parseNetworkList } = await import('../lib/libcni/conf.js');
    await addDel('IPAM in etcd vs embedded', parseNetworkList(Buffer.from(JSON.stringify(raw))), tetherPath, embedded, tetherPath);
  } finally { await server.stop(); }
});
await section('concurrent', async () => {
  // 200 IPAM ADDs at once, exec'd as a runtime delegates them: tether-ipam over 4 node names sharing one
  // etcd, and reference host-local on its local files. Each run's latencies, its p50/p99, and the
  // single-ADD median measured just before, the same way.
  const { startEtcd } = await import('../conformance/etcd.js');
  const { childProcess } = await import('../lib/builtin.js');
  const { mkdtempSync, rmSync } = await import('node:fs');
  const { tmpdir } = await import('node:os');
  const server = await startEtcd({ unix: true });
  const data = mkdtempSync(join(tmpdir(), 'tether-bench-hl-'));
  const execOnce = (file: string, conf: object, node: string, id: string) => new Promise<number>((resolve, reject) => {
    const t = process.hrtime.bigint();
    const c = childProcess().spawn(file, [], { stdio: ['pipe', 'pipe', 'ignore'], env: { PATH: '/usr/bin:/bin', CNI_COMMAND: 'ADD', CNI_CONTAINERID: id, CNI_NETNS: `/run/netns/${id}`, CNI_NETNS_OVERRIDE: '1', CNI_IFNAME: 'eth0', CNI_PATH: '/nonexistent', TETHER_NODENAME: node } });
    let out = '';
    c.stdout!.on('data', (b: Buffer) => { out += b; });
    c.on('close', (status) => (status === 0 ? resolve(Number(process.hrtime.bigint() - t) / 1e6) : reject(new Error(`${file} ADD ${id} exited ${status}: ${out}`))));
    c.stdin!.end(JSON.stringify(conf));
  });
  const tetherConf = { cniVersion: '1.0.0', name: 'bconc', type: 'tether-ipam', ipam: { type: 'tether-ipam', dataDir: data, ranges: [[{ subnet: '10.84.0.0/20' }]], etcd: { endpoints: [server.endpoint], prefix: `/bc${process.pid}` } } };
  const refConf = { cniVersion: '1.0.0', name: 'bconc', type: 'host-local', ipam: { type: 'host-local', dataDir: data, ranges: [[{ subnet: '10.85.0.0/20' }]] } };
  const run = async (label: string, file: string, conf: object) => {
    const single: number[] = [];
    for (let i = 0; i < 20; i++) single.push(await execOnce(file, conf, `node-${i % 4}`, `${label}-s${i}`));
    const t0 = Date.now();
    const before = childrenCpuMs();
    const lat = await Promise.all(Array.from({ length: 200 }, (_, i) => execOnce(file, conf, `node-${i % 4}`, `${label}-c${i}`)));
    // The CPU the 200 execs needed, spread over every core, bounds how soon the 198th can finish.
    const cpuPerExec = (childrenCpuMs() - before) / 200;
    return { single: stats(single), conc: stats(lat), perSecond: 200 / ((Date.now() - t0) / 1000), cpuPerExec, p99Floor: (0.99 * 200 * cpuPerExec) / cpus().length };
  };
  try {
    const a = await run('t', join(DIST, 'tether-ipam'), tetherConf);
    const b = await run('r', join(REF, 'host-local'), refConf);
    rows.push({ name: '200 concurrent IPAM ADDs: p50', a: 'tether-ipam, 4 nodes, etcd', b: 'host-local, files', sa: { ...a.conc, median: a.conc.median, p95: a.conc.p95 }, sb: { ...b.conc }, unit: 'ms' });
    rows.push({ name: '  same: p99', a: 'tether-ipam', b: 'host-local', sa: stats([a.conc.p99]), sb: stats([b.conc.p99]), unit: 'ms' });
    rows.push({ name: '  CPU per exec (user+sys)', a: 'tether-ipam', b: 'host-local', sa: stats([a.cpuPerExec]), sb: stats([b.cpuPerExec]), unit: 'ms' });
    rows.push({ name: `  p99 floor: 198 execs' CPU / ${cpus().length} cores`, a: 'tether-ipam', b: 'host-local', sa: stats([a.p99Floor]), sb: stats([b.p99Floor]), unit: 'ms' });
    rows.push({ name: '  single ADD before it', a: 'tether-ipam', b: 'host-local', sa: a.single, sb: b.single, unit: 'ms' });
    rows.push({ name: '  throughput (ADDs/s)', a: 'tether-ipam', b: 'host-local', sa: stats([a.perSecond]), sb: stats([b.perSecond]), unit: '/s' });
  } finally { await server.stop(); rmSync(data, { recursive: true, force: true }); }
});
// Bursts of parallel ADDs and DELs on one node, as runtimes start pods (bench/burst.ts).
await section('burst', async () => {
  const { burstBench } = await import('./burst.js');
  const ks = (process.env.BENCH_BURST_K ?? '1,16,30,100').split(',').map(Number);
  rows.push(...await burstBench(
    { list: loadNetworkList(benchNets, 'bench-tether-plain'), path: tetherPath },
    { list: loadNetworkList(benchNets, 'bench-ref-plain'), path: [REF] },
    ks, Number(process.env.BENCH_BURST_ROUNDS ?? 3)));
});
// Two published ports and a bandwidth limit per container: tether in one exec against the reference chain.
// Container i's ports are 20000+2i and 20001+2i (0: the measured one), so the 500 of the scale row never collide.
const portCaps: Caps = (i) => ({
  portMappings: [{ hostPort: 20000 + 2 * i, containerPort: 80, protocol: 'tcp' }, { hostPort: 20001 + 2 * i, containerPort: 53, protocol: 'udp' }],
  bandwidth: { ingressRate: 100_000_000, ingressBurst: 1_000_000, egressRate: 100_000_000, egressBurst: 1_000_000 },
});
const portsOnly: Caps = (i) => ({ portMappings: (portCaps(i).portMappings as unknown[]) });
await section('ports', async () => { await addDel('2 ports + bandwidth: tether vs reference chain', loadNetworkList(benchNets, 'bench-tether-ports'), tetherPath, loadNetworkList(benchNets, 'bench-ref-ports'), [REF], portCaps); });
await section('portscale', async () => { await scale(loadNetworkList(benchNets, 'bench-tether-ports'), tetherPath, Number(process.env.BENCH_MANY ?? 500), portsOnly, ' (2 ports each)'); });
await section('scale', async () => { await scale(loadNetworkList(benchNets, 'bench-tether-plain'), tetherPath, Number(process.env.BENCH_MANY ?? 500)); });
await section('rss', async () => {
  rows.push({ name: 'peak RSS of ADD/DEL execs', a: 'tether-bridge+tether-ipam', b: 'bridge+host-local', sa: stats([rssOfAdd('bench-tether-plain', DIST)]), sb: stats([rssOfAdd('bench-ref-plain', REF)]), unit: 'MiB' });
});
// The BGP speaker with 100 peers' worth of routes, against BIRD 2 on the same driver (bench/bgp.ts).
await section('bgp', async () => { rows.push(...await (await import('./bgp.js')).bgpBench()); });
await section('vxlan', async () => { rows.push(...await (await import('./vxlan.js')).benchVxlan()); });
// The BGP lab (tetherd in BGP mode, 10 nodes): routed pod throughput and block propagation (bench/bgp-lab.ts).
await section('bgplab', async () => { rows.push(...await (await import('./bgp-lab.js')).benchBgpLab()); });
// Docker on tether's driver vs Docker's own bridge driver, one private dockerd (bench/docker.ts).
await section('docker', async () => { rows.push(...await (await import('./docker.js')).benchDocker()); });
// Peer mode (no etcd): convergence after a change on the 10-node lab (bench/peers.ts).
await section('peers', async () => { rows.push(...await (await import('./peers.js')).benchPeers()); });
print();
writeFileSync(join(root, 'bench-results.json'), `${JSON.stringify({ n: N, at: new Date().toISOString(), rows, failed }, null, 2)}\n`);
if (failed.length) {
  process.stderr.write(`\nbench: ${failed.length} section(s) failed, their rows are missing:\n${failed.join('\n')}\n`);
  process.exitCode = 1;
}
