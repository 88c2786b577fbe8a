import test from 'ava';
import { fileURLToPath } from 'node:url';
import { cycles, importGraph, type Graph } from '../helpers/imports.js';

// Imports flow one way: programs (bin, cnictl, tetherd, lab, conformance, observe) build on plugins and
// ipam, which build on lib; shared contracts live in lib; no module imports its own importer.

const root = fileURLToPath(new URL('../../../', import.meta.url));
const DIRS = ['bin', 'lib', 'cnictl', 'conformance', 'plugins', 'ipam', 'bench', 'test', 'observe', 'tetherd', 'lab'] as const;
const g = importGraph(root, DIRS);
const top = (p: string) => p.split('/')[0];

/** Every import from a module under one of `from` into one of `into`, as "a -> b". */
function crossings(graph: Graph, from: readonly string[], into: readonly string[]): string[] {
  const out: string[] = [];
  for (const [f, tos] of graph) {
    if (!from.includes(top(f))) continue;
    for (const t of tos) if (into.includes(top(t))) out.push(`${f} -> ${t}`);
  }
  return out;
}

test('the source tree is read: every top-level directory has modules and imports', (t) => {
  for (const d of DIRS) t.true([...g.keys()].some((f) => top(f) === d), `modules under ${d}/`);
  t.true(g.get('bin/tether.ts')!.has('lib/programs.ts'), 'a known import is found');
  t.true(g.get('bin/programs.ts')!.has('cnictl/cli.ts'), 'a dynamic import is found');
});

test('there are no import cycles', (t) => {
  t.deepEqual(cycles(g), []);
});

test('the cycle finder finds a cycle and a self-import', (t) => {
  const sample: Graph = new Map([['a', new Set(['b'])], ['b', new Set(['c'])], ['c', new Set(['a'])], ['d', new Set(['d'])], ['e', new Set(['a'])]]);
  t.deepEqual(cycles(sample).sort(), [['a', 'b', 'c'], ['d']]);
});

test('lib/ imports nothing outside lib/', (t) => {
  t.deepEqual(crossings(g, ['lib'], DIRS.filter((d) => d !== 'lib')), []);
});

test('plugins and ipam import no program', (t) => {
  t.deepEqual(crossings(g, ['plugins', 'ipam'], ['bin', 'cnictl', 'tetherd', 'lab', 'conformance', 'observe', 'bench', 'test']), []);
});

test('cnictl is imported only by the binary that runs it (and its tests), and nothing but the binary, bench and tests imports bin/', (t) => {
  t.deepEqual(crossings(g, DIRS.filter((d) => d !== 'bin' && d !== 'cnictl' && d !== 'test'), ['cnictl']), []);
  t.deepEqual(crossings(g, DIRS.filter((d) => d !== 'bin' && d !== 'bench' && d !== 'test'), ['bin']), []);
});

test('tetherd imports no CLI and no lab; plugins never import tetherd', (t) => {
  t.deepEqual(crossings(g, ['tetherd'], ['cnictl', 'lab', 'bin', 'conformance']), []);
  t.deepEqual(crossings(g, ['plugins'], ['tetherd']), []);
});

// The bundler puts a static import of a builtin at the top of the chunk that holds the importing module,
// so every program loading that chunk pays for it on every exec: node:crypto and node:net cost ~3.5 ms
// each, node:child_process ~1 ms (lib/builtin.ts). Program code fetches them at first use instead.
const COSTLY = ['crypto', 'net', 'child_process', 'dgram', 'http', 'https', 'tls', 'zlib', 'worker_threads'];
const PRODUCT = ['bin', 'lib', 'cnictl', 'conformance', 'plugins', 'ipam', 'observe', 'tetherd', 'lab', 'docker'];
/** Build tools that run under Node and are never part of the binary. */
const NOT_IN_BINARY = new Set(['bin/build-dist.ts']);

test('no module of the binary imports a costly builtin statically (lib/builtin.ts fetches them at first use)', async (t) => {
  const { readdirSync, readFileSync, statSync } = await import('node:fs');
  const { join } = await import('node:path');
  const files: string[] = [];
  const walk = (rel: string) => {
    for (const n of readdirSync(join(root, rel))) {
      const r = `${rel}/${n}`;
      if (statSync(join(root, r)).isDirectory()) walk(r);
      else if (r.endsWith('.ts') && !r.endsWith('.d.ts') && !NOT_IN_BINARY.has(r)) files.push(r);
    }
  };
  for (const d of PRODUCT) walk(d);
  t.true(files.includes('ipam/store.ts') && files.includes('lib/builtin.ts'), 'the product sources are read');
  const pattern = new RegExp(`^import\\s+(?!type\\b)[^;]*?from\\s+'node:(${COSTLY.join('|')})'`, 'gm');
  const offenders = files.flatMap((f) => [...readFileSync(join(root, f), 'utf8').matchAll(pattern)].map((m) => `${f}: node:${m[1]}`));
  t.deepEqual(offenders, []);
  // The check itself finds what it looks for.
  t.is([..."import { createHash } from 'node:crypto';\nimport type { Server } from 'node:http';\n".matchAll(pattern)].length, 1);
});
