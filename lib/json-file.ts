import { mkdirSync, renameSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';

/**
 * A small JSON document other programs read (state, status, health files), replaced atomically: written
 * to a temporary name beside it and renamed, so a reader sees the old document or the new, never half.
 */
export function writeJsonAtomic(path: string, value: unknown, indent = 2): void {
  mkdirSync(dirname(path), { recursive: true, mode: 0o755 });
  const tmp = `${path}.${process.pid}.tmp`;
  writeFileSync(tmp, `${JSON.stringify(value, null, indent)}\n`, { mode: 0o644 });
  renameSync(tmp, path);
}
