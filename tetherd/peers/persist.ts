import { readFileSync } from 'node:fs';
import { writeJsonAtomic } from '../../lib/json-file.js';
import type { Snapshot } from './peers.js';

/**
 * The agent's state on disk: what it owns, what it knows of the others. Written (temporary file and
 * rename) after every change and before the change is sent anywhere, so a node that crashes comes back
 * owning exactly what the others may have heard it owns, never a block it already gave away.
 */
export function saveSnapshot(path: string, s: Snapshot): void { writeJsonAtomic(path, s, 0); }

export class StateFileError extends Error {
  constructor(msg: string) { super(msg); this.name = 'StateFileError'; }
}

/** The saved state; undefined when there is none (a first start). A damaged file stops the agent rather than being guessed at. */
export function loadSnapshot(path: string): Snapshot | undefined {
  let text: string;
  try { text = readFileSync(path, 'utf8'); } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw new StateFileError(`cannot read ${path}: ${(e as Error).message}`);
  }
  let s: Snapshot;
  try { s = JSON.parse(text) as Snapshot; } catch (e) { throw new StateFileError(`${path} is not JSON (${(e as Error).message}); move it aside to start this node as a new member`); }
  const ok = s && s.format === 'tether-peers/1' && typeof s.config === 'string' && Number.isInteger(s.blocks) && typeof s.self?.name === 'string'
    && Number.isInteger(s.self.version) && Array.isArray(s.members) && Array.isArray(s.retired) && Array.isArray(s.table) && typeof s.savedAt === 'number'
    && s.table.every((r) => Number.isInteger(r.start) && Number.isInteger(r.count) && typeof r.owner === 'string' && Number.isInteger(r.version));
  if (!ok) throw new StateFileError(`${path} is not a tether peer state (format tether-peers/1); move it aside to start this node as a new member`);
  return s;
}
