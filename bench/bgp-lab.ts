import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ipamEtcdPrefix } from '../ipam/store.js';
import { formatCIDR } from '../lib/ip/addr.js';
import { EtcdKV } from '../lib/store/etcd.js';
import { addPod, labDown, labUp, type LabState } from '../lab/index.js';
import { learnedRoutes, POD_NETWORK } from '../lab/bgp.js';
import { parseBlock } from '../tetherd/bgp-plan.js';
import { stats } from './stats.js';
import { throughputOf, throughputRows, type BenchRow } from './throughput.js';

/**
 * The BGP lab's figures: iperf3 TCP pod -> pod across nodes (plain routing, no overlay) against
 * node -> node on the underlay in the same run, and how long a new IPAM block takes to be routed on
 * every other node of a 10-node full mesh (tetherd watches the blocks in etcd and announces at once).
 */
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Pods are added on one node after another until one claims a new block; from its key in etcd (and from that ADD's start) to a route on every other node. */
async function newBlockTimes(lab: LabState, samples: number): Promise<{ fromKey: number[]; fromAdd: number[] }> {
  const kv = new EtcdKV({ endpoints: [lab.etcd.endpoint], prefix: ipamEtcdPrefix(`/${lab.prefix}`, POD_NETWORK) });
  const fromKey: number[] = [];
  const fromAdd: number[] = [];
  for (let i = 0; i < samples; i++) {
    const node = lab.nodes[i % lab.nodes.length];
    const others = lab.nodes.filter((n) => n !== node);
    const { entries, revision } = await kv.rangeWithRevision('block/');
    let keyAt = 0;
    let block = '';
    const w = kv.watch('block/', revision + 1, {
      events: (evs) => {
        for (const e of evs) {
          if (keyAt || e.type !== 'put' || entries.has(e.key)) continue;
          const b = parseBlock(e.value);
          if (b) { keyAt = performance.now(); block = formatCIDR(b.cidr); }
        }
      },
      compacted: () => {}, broken: () => {},
    });
    try {
      await sleep(100); // the watch is open before the first ADD
      let adding: Promise<void> | undefined;
      let addStart = 0;
      let done = 0;
      const t0 = performance.now();
      while (performance.now() - t0 < 20_000) {
        if (!keyAt && !adding) { addStart = performance.now(); adding = addPod(lab, node).then(() => { adding = undefined; }); }
        if (block && others.every((n) => learnedRoutes(n).has(block))) { done = performance.now(); break; }
        await sleep(2);
      }
      await adding;
      if (!done) throw new Error(`no new block of ${node.name} was routed everywhere within 20 s`);
      fromKey.push(done - keyAt);
      fromAdd.push(done - addStart);
    } finally { w.close(); }
  }
  return { fromKey, fromAdd };
}

export async function benchBgpLab(o: { rounds?: number; seconds?: number; nodes?: number; samples?: number } = {}): Promise<BenchRow[]> {
  const rounds = o.rounds ?? Number(process.env.BENCH_IPERF_ROUNDS ?? 8);
  const seconds = o.seconds ?? Number(process.env.BENCH_IPERF_SECONDS ?? 3);
  const nodes = o.nodes ?? Number(process.env.BENCH_BGP_LAB_NODES ?? 10);
  // Throughput on 3 nodes, beside plain routed veths (the reference ptp plugin, static routes) on the same kind of lab.
  await import('./reference-lab.js');
  const [ours, ref] = await throughputOf([
    { label: 'tether', lab: { nodes: 3, podsPerNode: 1, mode: 'bgp' } },
    { label: 'routed', lab: { nodes: 3, podsPerNode: 1, mode: 'ref-routed' } },
  ], rounds, seconds);
  let t = { fromKey: [] as number[], fromAdd: [] as number[] };
  // /30 blocks: every fourth pod on a node claims a new one, which is what the second figure times.
  await withBgpLab(nodes, async (lab) => { t = await newBlockTimes(lab, o.samples ?? 10); }, { blockSize: 30 });
  return [
    ...throughputRows('BGP tether', 'pod->pod across nodes (tether-bgp-route, routed)', ours, { seconds, target: 0.95 }),
    ...throughputRows('routed reference', 'pod->pod (ptp+host-local, static routes)', ref, { seconds }),
    { name: '  pod->pod: tether vs the reference datapath', a: 'tether-bgp-route', b: 'ptp', sa: stats(ours.pods), sb: stats(ref.pods), unit: 'Gbit/s' },
    { name: `new block routed on all ${nodes - 1} other nodes (${nodes}-node mesh)`, a: 'from its key in etcd', b: 'target', sa: stats(t.fromKey), sb: stats([1000]), unit: 'ms' },
    { name: '  same, from the ADD that claims it', a: 'ADD start -> routed everywhere', b: 'target', sa: stats(t.fromAdd), sb: stats([1000]), unit: 'ms' },
  ];
}

async function withBgpLab(nodes: number, fn: (lab: LabState) => Promise<void>, modeOptions: Record<string, unknown> = {}): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'tbl-bench-'));
  let lab: LabState | undefined;
  try {
    lab = await labUp({ nodes, podsPerNode: 1, mode: 'bgp', dir, modeOptions });
    await fn(lab);
  } finally {
    if (lab) await labDown(lab);
    rmSync(dir, { recursive: true, force: true });
  }
}
