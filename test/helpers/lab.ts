import type { ExecutionContext } from 'ava';
import { rmSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { runIn } from '../../conformance/spawn.js';
import { labDown, loadLab } from '../../lab/multinode.js';
import { alive } from '../../lab/procs.js';
import { listNamedNetns } from '../../lib/netns/netns.js';

const cnictl = fileURLToPath(new URL('../../../dist/bin/cnictl', import.meta.url));

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
