import { spawnSync } from 'node:child_process';
import { mkdirSync, rmSync, symlinkSync, statSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { LINKS } from '../lib/programs.js';
import { COMPILE_FLAGS } from './compile-flags.js';

// Compiles the whole program into dist/bin/tether with Bun and makes one link per program name.

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
const out = join(root, 'dist', 'bin');
const bun = join(root, 'node_modules', '.bin', 'bun');
const names = LINKS;

mkdirSync(out, { recursive: true });
const started = Date.now();
const build = spawnSync(bun, [
  ...COMPILE_FLAGS,
  '--outfile', join(out, 'tether'), join(root, 'bin', 'tether.ts'),
], { cwd: root, stdio: 'inherit' });
if (build.status !== 0) {
  process.stderr.write(`build-dist: bun build failed (status ${build.status ?? build.signal})\n`);
  process.exit(1);
}
for (const name of names) {
  const link = join(out, name);
  rmSync(link, { force: true });
  symlinkSync('tether', link);
}
const size = (statSync(join(out, 'tether')).size / 1048576).toFixed(1);
process.stdout.write(`build-dist: dist/bin/tether (${size} MiB) with links ${names.join(', ')} in ${Date.now() - started} ms\n`);
