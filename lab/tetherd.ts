import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { runIn } from '../conformance/spawn.js';
import { netnsPath } from '../lib/netns/netns.js';
import type { LabNode, LabState } from './types.js';
import { alive, spawnDaemon, stopPid } from './procs.js';

/** Where a lab node's tetherd keeps its config and its log. */
export interface AgentFiles { config: string; log: string }

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/**
 * Starts the node's tetherd (any mode) in its namespace on `config` and waits until `ready()` says it
 * has come up (each mode knows its own sign), failing with the end of its log if it dies or is late.
 */
export async function startAgent(lab: LabState, node: LabNode, f: AgentFiles, config: object, ready: () => boolean, what: string): Promise<void> {
  writeFileSync(f.config, `${JSON.stringify(config, null, 2)}\n`);
  node.agentPid = spawnDaemon(netnsPath(node.netns), join(lab.bin, '..', 'tetherd'), ['--config', f.config], f.log);
  for (const until = Date.now() + 20_000; Date.now() < until; await sleep(25)) {
    if (ready()) return;
    if (!alive(node.agentPid)) break;
  }
  let tail = '';
  try { tail = readFileSync(f.log, 'utf8').trim().split('\n').slice(-5).join('\n  '); } catch { /* no log */ }
  throw new Error(`tetherd on ${node.name} did not ${what}; its log ends:\n  ${tail}`);
}

/** Stops the node's tetherd (SIGTERM, by its PID): the dataplane stays, as on a restart. */
export async function stopAgent(node: LabNode): Promise<void> {
  if (node.agentPid) await stopPid(node.agentPid, 'tetherd');
  node.agentPid = undefined;
}

/** Takes the node out of the cluster: its agent stops, then `tetherd leave` removes its records. */
export async function leaveAgent(lab: LabState, node: LabNode, f: AgentFiles): Promise<void> {
  await stopAgent(node);
  const r = await runIn(netnsPath(node.netns), join(lab.bin, '..', 'tetherd'), ['leave', '--config', f.config], 15_000);
  if (r.status !== 0) throw new Error(`tetherd leave on ${node.name}: ${r.stderr.trim() || r.stdout.trim()}`);
}
