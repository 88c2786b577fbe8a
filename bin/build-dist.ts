import { spawnSync } from 'node:child_process';
import { mkdirSync, rmSync, symlinkSync, statSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { LINKS } from './programs.js';

// Compiles the whole program into dist/bin/tether with Bun and makes one link per program name.
// --bytecode: the binary carries precompiled bytecode. Measured here (cnictl --version): ESM without
// bytecode ~45 ms; ESM with it ~13 ms (top-level await defeated it: there is none now); CommonJS with it
// ~9.0 ms; ESM with it and --splitting ~7.9 ms and 2 MiB less resident: each program's code is a chunk
// loaded only when that program runs.

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
const out = join(root, 'dist', 'bin');
const bun = join(root, 'node_modules', '.bin', 'bun');
const names = LINKS;

mkdirSync(out, { recursive: true });
const started = Date.now();
const build = spawnSync(bun, [
  'build', '--compile', '--format=esm', '--splitting', '--bytecode', '--minify-syntax', '--minify-whitespace',
  // A plugin runs in whatever directory the runtime has: it must never pick up a .env or bunfig.toml there.
  '--no-compile-autoload-dotenv', '--no-compile-autoload-bunfig',
  // A plugin lives ~20 ms: tiering code up to the JIT costs more than it returns. A 1000x threshold saves
  // ~3 MiB per exec and ~1 ms (measured on ADD). The JIT cannot be switched off: bun:ffi needs it.
  '--compile-jit-policy=1000',
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
