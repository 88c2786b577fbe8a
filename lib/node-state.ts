import { readFileSync } from 'node:fs';
import { writeJsonAtomic } from './json-file.js';

/**
 * What tetherd publishes about its node for the CNI plugin (tether-vxlan reads the subnet and MTU) and
 * for itself after a restart (the last subnet, reclaimed if still free). One small JSON file, replaced
 * atomically so a reader never sees half of it.
 */
export interface NodeState {
  node: string;
  network: string;
  /** The cluster pool, e.g. 10.244.0.0/16: pods route to it through the bridge. */
  pool: string;
  /** This node's subnet, e.g. 10.244.3.0/24. */
  subnet: string;
  /** MTU for pods: the overlay device's. */
  mtu: number;
  underlayIP: string;
  vtepMAC: string;
  vni: number;
  device: string;
  leaseID?: string;
  updated: string;
}

export function writeNodeState(path: string, s: NodeState): void { writeJsonAtomic(path, s); }

/** The state, or undefined when tetherd has not published one (yet). A corrupt file counts as absent. */
export function readNodeState(path: string): NodeState | undefined {
  let raw: string;
  try { raw = readFileSync(path, 'utf8'); } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw e;
  }
  try {
    const s = JSON.parse(raw) as NodeState;
    return typeof s.subnet === 'string' && typeof s.mtu === 'number' && typeof s.pool === 'string' ? s : undefined;
  } catch { return undefined; }
}
