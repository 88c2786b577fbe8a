import { readFileSync, rmSync } from 'node:fs';
import { writeJsonAtomic } from '../../lib/json-file.js';

/**
 * The operator's reclaim request, from `cnictl peers reclaim` (or `tetherd reclaim`) to the running
 * agent on the same node: a small file beside the agent's state, picked up at its next step. The
 * outcome is read back from the agent's status file (reclaim: {node, result}).
 */
export interface ReclaimRequest { node: string; at: string }

export const requestFile = (stateFile: string) => `${stateFile}.reclaim`;

export function writeReclaimRequest(stateFile: string, node: string): void {
  writeJsonAtomic(requestFile(stateFile), { node, at: new Date().toISOString() } satisfies ReclaimRequest);
}

/** The pending request, taken (the file removed); undefined when none or unreadable. */
export function takeReclaimRequest(stateFile: string): ReclaimRequest | undefined {
  const path = requestFile(stateFile);
  let r: ReclaimRequest | undefined;
  try { r = JSON.parse(readFileSync(path, 'utf8')) as ReclaimRequest; } catch { return undefined; }
  rmSync(path, { force: true });
  return typeof r?.node === 'string' ? r : undefined;
}
