import { spawnSync } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { COMPILE_FLAGS } from '../bin/compile-flags.js';

/** Compiles bench/floor/hello.ts into a throwaway directory with the flags of dist/bin/tether; returns its path. */
export function buildFloorBinary(root: string): string {
  const out = join(mkdtempSync(join(tmpdir(), 'tether-floor-')), 'hello');
  const r = spawnSync(join(root, 'node_modules', '.bin', 'bun'), [...COMPILE_FLAGS, '--outfile', out, join(root, 'bench', 'floor', 'hello.ts')], { cwd: root, encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`building the runtime-floor binary failed: ${r.stderr}`);
  return out;
}
