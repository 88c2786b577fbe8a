import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { runIn, startIn, waitForLine } from '../conformance/spawn.js';
import { formatCIDR } from '../lib/ip/addr.js';
import { Netlink } from '../lib/netlink/handle.js';
import { netnsPath } from '../lib/netns/netns.js';
import { EtcdKV } from '../lib/store/etcd.js';
import { joinNewNode, labDown, labUp, type LabNode, type LabState } from '../lab/multinode.js';
import { RTPROT_TETHER } from '../tetherd/dataplane.js';
import { subnetFromKey } from '../tetherd/subnets.js';
import { stats, type Stats } from './stats.js';

/**
 * The overlay's figures, from a 3-node VXLAN lab: iperf3 TCP pod -> pod across nodes over the overlay
 * against node -> node on the underlay (interleaved in the same run), and how long a new node's subnet
 * takes to be routable from every other node.
 */
export interface BenchRow { name: string; a: string; b: string; sa: Stats; sb: Stats; unit: string }

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** One iperf3 TCP run from `client` to `server` (namespaces) for `seconds`; Gbit/s received. */
export async function iperf(serverNs: string, clientNs: string, ip: string, seconds: number): Promise<number> {
  const port = String(5201 + Math.floor(Math.random() * 1000));
  const server = startIn(netnsPath(serverNs), 'iperf3', ['-s', '-1', '-p', port, '-B', ip]);
  try {
    await waitForLine(server, 'Server listening', 5000).catch(async () => { await sleep(300); return ''; });
    const r = await runIn(netnsPath(clientNs), 'iperf3', ['-c', ip, '-p', port, '-t', String(seconds), '-J'], (seconds + 15) * 1000);
    if (r.status !== 0) throw new Error(`iperf3 client: ${r.stdout.slice(0, 300)} ${r.stderr}`);
    return JSON.parse(r.stdout).end.sum_received.bits_per_second / 1e9;
  } finally {
    // Stopped by its PID (its own process group, started by us); -1 makes it exit after one test anyway.
    try { process.kill(-server.pid!, 'SIGKILL'); } catch { /* already gone */ }
  }
}

function routed(node: LabNode, subnet: string): boolean {
  const nl = Netlink.at(netnsPath(node.netns));
  try { return nl.routes(4).some((r) => r.protocol === RTPROT_TETHER && r.dst !== null && formatCIDR(r.dst) === subnet); } finally { nl.close(); }
}

/** A node joins: from its subnet key appearing in etcd (and from its agent's start) until every other node routes it. */
async function joinTimes(lab: LabState, samples: number): Promise<{ fromKey: number[]; fromStart: number[] }> {
  const kv = new EtcdKV({ endpoints: [lab.etcd.endpoint], prefix: `/${lab.prefix}/vxlan/lab/` });
  const fromKey: number[] = [];
  const fromStart: number[] = [];
  for (let i = 0; i < samples; i++) {
    const others = [...lab.nodes];
    let keyAt = 0;
    let subnet = '';
    const startRev = (await kv.rangeWithRevision('subnets/')).revision + 1;
    const w = kv.watch('subnets/', startRev, {
      events: (evs) => { for (const e of evs) if (e.type === 'put' && !keyAt) { keyAt = performance.now(); subnet = formatCIDR(subnetFromKey(e.key)!); } },
      compacted: () => {}, broken: () => {},
    });
    try {
      await sleep(100); // the watch is open before the node starts
      const t0 = performance.now();
      const joining = joinNewNode(lab);
      let done = 0;
      while (performance.now() - t0 < 10_000) {
        if (subnet && others.every((n) => routed(n, subnet))) { done = performance.now(); break; }
        await sleep(2);
      }
      await joining;
      if (!done) throw new Error(`node ${lab.nodes[lab.nodes.length - 1].name} was not routable everywhere within 10 s`);
      fromKey.push(done - keyAt);
      fromStart.push(done - t0);
    } finally { w.close(); }
  }
  return { fromKey, fromStart };
}

/**
 * iperf3 TCP pod -> pod from n1's first pod to n2's, interleaved with node -> node (n1 -> n2) on the
 * underlay, `rounds` times each: both paths see the same machine load.
 */
export async function podVersusUnderlay(lab: LabState, rounds: number, seconds: number): Promise<{ pods: number[]; underlay: number[] }> {
  const [n1, n2] = lab.nodes;
  const p1 = lab.pods.find((p) => p.node === n1.name)!;
  const p2 = lab.pods.find((p) => p.node === n2.name)!;
  const pods: number[] = [];
  const underlay: number[] = [];
  for (let i = 0; i < rounds; i++) {
    underlay.push(await iperf(n2.netns, n1.netns, n2.underlayIP, seconds));
    pods.push(await iperf(p2.netns, p1.netns, p2.ip, seconds));
  }
  return { pods, underlay };
}

export async function benchVxlan(o: { rounds?: number; seconds?: number; joins?: number } = {}): Promise<BenchRow[]> {
  const rounds = o.rounds ?? Number(process.env.BENCH_IPERF_ROUNDS ?? 6);
  const seconds = o.seconds ?? Number(process.env.BENCH_IPERF_SECONDS ?? 3);
  const dir = mkdtempSync(join(tmpdir(), 'tvx-bench-'));
  let lab: LabState | undefined;
  try {
    lab = await labUp({ nodes: 3, podsPerNode: 1, mode: 'vxlan', dir });
    const { pods: overlay, underlay } = await podVersusUnderlay(lab, rounds, seconds);
    const joins = await joinTimes(lab, o.joins ?? 5);
    return [
      { name: `iperf3 TCP ${seconds} s x ${rounds}, Gbit/s`, a: 'pod->pod across nodes (VXLAN)', b: 'node->node (underlay)', sa: stats(overlay), sb: stats(underlay), unit: 'Gbit/s' },
      { name: 'new node routable from all others', a: 'from its subnet key in etcd', b: 'target', sa: stats(joins.fromKey), sb: stats([1000]), unit: 'ms' },
      { name: '  same, from its agent\'s start', a: 'tetherd start -> routable', b: 'target', sa: stats(joins.fromStart), sb: stats([1000]), unit: 'ms' },
    ];
  } finally {
    if (lab) await labDown(lab);
    rmSync(dir, { recursive: true, force: true });
  }
}
