import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { formatCIDR } from '../lib/ip/addr.js';
import { EtcdKV } from '../lib/store/etcd.js';
import { joinNewNode, onNode, labDown, labUp, type LabNode, type LabState } from '../lab/index.js';
import { RTPROT_TETHER_VXLAN as RTPROT_TETHER } from '../lib/route-protocols.js';
import { subnetFromKey } from '../tetherd/subnets.js';
import { stats } from './stats.js';
import { throughputOf, throughputRows, type BenchRow } from './throughput.js';

/**
 * The overlay's figures, from a 3-node VXLAN lab: iperf3 TCP pod -> pod across nodes over the overlay
 * against node -> node on the underlay (interleaved in the same run), and how long a new node's subnet
 * takes to be routable from every other node.
 */
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function routed(node: LabNode, subnet: string): boolean {
  return onNode(node, (nl) => nl.routes(4).some((r) => r.protocol === RTPROT_TETHER && r.dst !== null && formatCIDR(r.dst) === subnet));
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

export async function benchVxlan(o: { rounds?: number; seconds?: number; joins?: number } = {}): Promise<BenchRow[]> {
  const rounds = o.rounds ?? Number(process.env.BENCH_IPERF_ROUNDS ?? 8);
  const seconds = o.seconds ?? Number(process.env.BENCH_IPERF_SECONDS ?? 3);
  await import('./reference-lab.js');
  // directRouting (Flannel's DirectRouting): nodes on one L2 segment, as the lab's are, route pods' traffic unencapsulated.
  const [ours, ref, direct] = await throughputOf([
    { label: 'tether', lab: { nodes: 3, podsPerNode: 1, mode: 'vxlan' } },
    { label: 'flannel', lab: { nodes: 3, podsPerNode: 1, mode: 'ref-flannel' } },
    { label: 'direct', lab: { nodes: 3, podsPerNode: 1, mode: 'vxlan', modeOptions: { directRouting: true } } },
  ], rounds, seconds);
  const dir = mkdtempSync(join(tmpdir(), 'tvx-bench-'));
  let lab: LabState | undefined;
  try {
    lab = await labUp({ nodes: 3, podsPerNode: 1, mode: 'vxlan', dir });
    const joins = await joinTimes(lab, o.joins ?? 5);
    return [
      ...throughputRows('VXLAN tether', 'pod->pod across nodes (tether-vxlan, tetherd)', ours, { seconds, target: 0.85 }),
      ...throughputRows('VXLAN reference', 'pod->pod (Flannel datapath by hand, bridge+host-local)', ref, { seconds }),
      { name: '  pod->pod: tether vs the reference datapath', a: 'tether-vxlan', b: 'Flannel by hand', sa: stats(ours.pods), sb: stats(ref.pods), unit: 'Gbit/s' },
      ...throughputRows('VXLAN tether, directRouting', 'pod->pod, same L2 segment: routed, no encapsulation', direct, { seconds }),
      { name: 'new node routable from all others', a: 'from its subnet key in etcd', b: 'target', sa: stats(joins.fromKey), sb: stats([1000]), unit: 'ms' },
      { name: '  same, from its agent\'s start', a: 'tetherd start -> routable', b: 'target', sa: stats(joins.fromStart), sb: stats([1000]), unit: 'ms' },
    ];
  } finally {
    if (lab) await labDown(lab);
    rmSync(dir, { recursive: true, force: true });
  }
}
