import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { runIn, startIn, waitForLine } from '../conformance/spawn.js';
import { netnsPath } from '../lib/netns/netns.js';
import { labDown, labUp, type LabOptions, type LabState } from '../lab/index.js';
import { stats, type Stats } from './stats.js';

/**
 * Pod-to-pod throughput across nodes against node-to-node on the underlay, for tether's lab modes and for
 * the reference datapaths built on the same lab (bench/reference-lab.ts). On this machine nothing limits
 * the underlay but the CPU, so a ratio is a ratio of CPU per byte; the reference's ratio, taken in the same
 * run and interleaved round by round with ours, says how much of that is the kernel's datapath.
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

/** Gbit/s per round: pods[i] and underlay[i] were measured back to back. */
export interface Throughput { pods: number[]; underlay: number[] }

/** One round: node n1 -> n2 on the underlay, then n1's first pod -> n2's first pod. */
async function round(lab: LabState, seconds: number, into: Throughput): Promise<void> {
  const [n1, n2] = lab.nodes;
  const p1 = lab.pods.find((p) => p.node === n1.name)!;
  const p2 = lab.pods.find((p) => p.node === n2.name)!;
  const u = await iperf(n2.netns, n1.netns, n2.underlayIP, seconds);
  const p = await iperf(p2.netns, p1.netns, p2.ip, seconds);
  into.underlay.push(u);
  into.pods.push(p);
}

/** Round-robin over the labs, `rounds` times: every lab's runs see the same machine load. */
export async function podVersusUnderlay(labs: LabState[], rounds: number, seconds: number): Promise<Throughput[]> {
  const out = labs.map((): Throughput => ({ pods: [], underlay: [] }));
  for (let i = 0; i < rounds; i++) for (const [k, lab] of labs.entries()) await round(lab, seconds, out[k]);
  return out;
}

export interface Contender { label: string; lab: Omit<LabOptions, 'dir'> }

/** Brings every contender's lab up (3 nodes, a pod each), runs the rounds, takes them all down. */
export async function throughputOf(contenders: Contender[], rounds: number, seconds: number): Promise<Throughput[]> {
  const dirs: string[] = [];
  const labs: LabState[] = [];
  try {
    for (const c of contenders) {
      const dir = mkdtempSync(join(tmpdir(), 'tether-bench-lab-'));
      dirs.push(dir);
      labs.push(await labUp({ ...c.lab, dir }));
    }
    return await podVersusUnderlay(labs, rounds, seconds);
  } finally {
    for (const lab of labs) await labDown(lab);
    for (const d of dirs) rmSync(d, { recursive: true, force: true });
  }
}

/** The rows for one contender: Gbit/s against its underlay, and the round-by-round ratio against the target. */
export function throughputRows(label: string, path: string, t: Throughput, o: { seconds: number; target?: number }): BenchRow[] {
  const ratios = t.pods.map((p, i) => p / t.underlay[i]);
  return [
    { name: `${label}: iperf3 TCP ${o.seconds} s x ${t.pods.length}, Gbit/s`, a: path, b: 'node->node (underlay)', sa: stats(t.pods), sb: stats(t.underlay), unit: 'Gbit/s' },
    { name: '  pod/underlay, per round', a: label, b: o.target ? 'target' : '-', sa: stats(ratios), sb: stats([o.target ?? 1]), unit: 'x' },
  ];
}
