import type { ExecutionContext } from 'ava';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { runIn } from '../../conformance/spawn.js';
import { formatMatrix, labDown, labUp, loadLab, type LabOptions, type LabPod, type LabState } from '../../lab/index.js';
import { alive } from '../../lab/procs.js';
import { listNamedNetns } from '../../lib/netns/netns.js';

const cnictl = fileURLToPath(new URL('../../../dist/bin/cnictl', import.meta.url));

/** `cnictl lab up` of a mode into dir (with any further flags), then what `cnictl lab status --json` says of it. */
export async function cnictlLabUp(t: ExecutionContext, dir: string, nodes: number, mode: string, flags: string[] = []): Promise<any> {
  const up = await runIn(undefined, cnictl, ['lab', 'up', '--nodes', String(nodes), '--mode', mode, ...flags, '--dir', dir], 90_000);
  t.is(up.status, 0, up.stderr);
  const st = await runIn(undefined, cnictl, ['lab', 'status', '--json', '--dir', dir], 90_000);
  t.is(st.status, 0, st.stderr);
  return JSON.parse(st.stdout);
}

/** `cnictl lab down` on a lab directory, and the proof it removed everything: namespaces, agents, etcd. */
export async function cnictlLabDownLeavesNothing(t: ExecutionContext, dir: string): Promise<void> {
  const lab = loadLab(dir)!;
  const down = await runIn(undefined, cnictl, ['lab', 'down', '--dir', dir], 60_000);
  t.is(down.status, 0, down.stderr);
  t.deepEqual(listNamedNetns().filter((n) => n.startsWith(`${lab.prefix}-`)), []);
  for (const n of lab.nodes) t.false(alive(n.agentPid!, 'tetherd'));
  t.false(alive(lab.etcd.pid, 'etcd'));
}

/** Whatever a failed test left of a lab in dir goes, and the directory with it. */
export async function removeLabDir(dir: string): Promise<void> {
  const lab = loadLab(dir);
  if (lab) await labDown(lab);
  rmSync(dir, { recursive: true, force: true });
}

/**
 * A lab for one test, in a directory of its own: brought up, handed to fn, then taken down with the
 * proof that nothing of it is left (namespaces, agents, etcd), also when fn fails.
 */
export async function withLab(t: ExecutionContext, o: Omit<LabOptions, 'dir'>, fn: (lab: LabState) => Promise<void>): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), `${o.mode}-lab-`));
  let lab: LabState | undefined;
  try {
    lab = await labUp({ ...o, dir });
    await fn(lab);
  } finally {
    if (lab) {
      const left = await labDown(lab);
      t.deepEqual(left, [], 'lab down leaves no namespace');
      for (const n of lab.nodes) if (n.agentPid) t.false(alive(n.agentPid, 'tetherd'), `tetherd of ${n.name} stopped`);
      t.false(alive(lab.etcd.pid, 'etcd'), 'etcd stopped');
    }
    rmSync(dir, { recursive: true, force: true });
  }
}

/** The pairs of pods that could not reach each other, as "a->b" (empty when every pod reaches every other). */
function unreachable(pods: LabPod[], m: boolean[][]): string[] {
  return m.flatMap((row, i) => row.map((ok, j) => (ok ? '' : `${pods[i].name}->${pods[j].name}`))).filter(Boolean);
}

/** Asserts every pod of `pods` reaches every other (m from connectivity(lab, pods)), showing the matrix if not. */
export function allReach(t: ExecutionContext, pods: LabPod[], m: boolean[][], what = 'every pod reaches every other'): void {
  t.deepEqual(unreachable(pods, m), [], `${what}\n${formatMatrix(pods, m)}`);
}

/** A lab on "store": "peers" (no etcd) in a /20 of /26 blocks: 64 blocks to share. */
export const withPeersLab = (t: ExecutionContext, mode: 'bgp' | 'vxlan', nodes: number, pods: number, fn: (lab: LabState) => Promise<void>) =>
  withLab(t, { nodes, podsPerNode: pods, mode, pool: '10.244.0.0/20', modeOptions: { store: 'peers' } }, fn);
