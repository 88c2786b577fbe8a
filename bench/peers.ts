import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { runIn } from '../conformance/spawn.js';
import { netnsPath } from '../lib/netns/netns.js';
import { labDown, labUp, saveLab, type LabNode, type LabState } from '../lab/index.js';
import { driverFor } from '../lab/modes.js';
import type { Snapshot } from '../tetherd/peers/peers.js';
import { stats } from './stats.js';
import type { BenchRow } from './throughput.js';

/**
 * Peer mode's convergence on the 10-node lab (BGP on peers by default, BENCH_PEER_MODE=vxlan for VXLAN
 * on peers; no etcd either way): a change is made on one node, and
 * the figure is from the moment the node that made it saved it (every agent saves a change before it
 * sends it, and after it merges one) to the moment the last of the other nodes saved it. Two changes,
 * alternately: a node leaving (its blocks handed over) and the same node joining again (given blocks by
 * a donor). Read from the agents' state files, polled every few ms: a late read only makes it longer.
 */
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const stateOf = (n: LabNode): Snapshot | undefined => { try { return JSON.parse(readFileSync(join(n.dir, 'peers.json'), 'utf8')) as Snapshot; } catch { return undefined; } };

/** Polls every node's state until each satisfies `done`; the spread of the first savedAt that did, across the nodes. */
async function spread(nodes: LabNode[], done: (s: Snapshot) => boolean, start: () => Promise<void>): Promise<number> {
  const first = new Map<string, number>();
  let failed: unknown;
  const starting = start().catch((e) => { failed = e; });
  for (const until = Date.now() + 30_000; Date.now() < until && first.size < nodes.length && !failed; await sleep(2)) {
    for (const n of nodes) {
      if (first.has(n.name)) continue;
      const s = stateOf(n);
      if (s && done(s)) first.set(n.name, s.savedAt);
    }
  }
  await starting;
  if (failed) throw failed;
  if (first.size < nodes.length) throw new Error(`the change reached ${first.size} of ${nodes.length} nodes within 30 s`);
  return Math.max(...first.values()) - Math.min(...first.values());
}

const owns = (s: Snapshot, node: string) => s.table.some((r) => r.owner === node);
const left = (s: Snapshot, node: string) => (s.self.name === node ? s.self : s.members.find((m) => m.name === node))?.left === true;

export async function benchPeers(o: { nodes?: number; cycles?: number; mode?: 'bgp' | 'vxlan' } = {}): Promise<BenchRow[]> {
  const nodes = o.nodes ?? 10;
  const mode = o.mode ?? (process.env.BENCH_PEER_MODE === 'vxlan' ? 'vxlan' : 'bgp');
  const driver = await driverFor(mode);
  const cycles = o.cycles ?? Number(process.env.BENCH_PEER_CYCLES ?? 5);
  const dir = mkdtempSync(join(tmpdir(), 'bench-peers-'));
  let lab: LabState | undefined;
  const leaves: number[] = [];
  const joins: number[] = [];
  try {
    lab = await labUp({ nodes, podsPerNode: 0, mode, dir: join(dir, 'lab'), pool: '10.244.0.0/20', modeOptions: { store: 'peers' } });
    const l = lab;
    const moving = l.nodes[l.nodes.length - 1];
    const config = join(moving.dir, 'tetherd.json');
    for (let i = 0; i < cycles; i++) {
      await driver.stopNode(l, moving);
      leaves.push(await spread(l.nodes, (s) => left(s, moving.name) && !owns(s, moving.name), async () => {
        const r = await runIn(netnsPath(moving.netns), join(l.bin, '..', 'tetherd'), ['leave', '--config', config], 30_000);
        if (r.status !== 0) throw new Error(`leave: ${r.stderr}`);
      }));
      // The same node back as a new member (its state and store wiped): a donor gives it blocks.
      rmSync(join(moving.dir, 'peers.json'), { force: true });
      rmSync(join(moving.dir, 'cni'), { recursive: true, force: true });
      joins.push(await spread(l.nodes, (s) => owns(s, moving.name), async () => { await driver.startNode(l, moving); saveLab(l); }));
    }
  } finally {
    if (lab) await labDown(lab);
    rmSync(dir, { recursive: true, force: true });
  }
  const target = stats([1000]);
  return [
    { name: `peers: a node leaves, all ${nodes} nodes saved it`, a: `tether ${mode} on peers (${nodes} nodes, no etcd)`, b: 'target', sa: stats(leaves), sb: target, unit: 'ms' },
    { name: `peers: a node is given blocks, all ${nodes} saved it`, a: `tether ${mode} on peers (${nodes} nodes, no etcd)`, b: 'target', sa: stats(joins), sb: target, unit: 'ms' },
  ];
}
