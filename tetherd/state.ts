import { mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';

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

/** A small JSON document replaced atomically (temporary file + rename): a reader sees the old or the new. */
export function writeJsonAtomic(path: string, value: unknown): void {
  mkdirSync(dirname(path), { recursive: true, mode: 0o755 });
  const tmp = `${path}.${process.pid}.tmp`;
  writeFileSync(tmp, `${JSON.stringify(value, null, 2)}\n`, { mode: 0o644 });
  renameSync(tmp, path);
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
