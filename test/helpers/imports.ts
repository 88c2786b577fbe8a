import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';

// The source tree's import graph, read from the .ts files themselves (static, side-effect and dynamic
// imports; `import type` counts too, since a type cycle is the same tangle). Used by the layering test.

export type Graph = Map<string, Set<string>>;

const SPEC = /(?:\bfrom\s*|\bimport\s*\(\s*|^\s*import\s+)['"](\.{1,2}\/[^'"]+)['"]/gm;

function* tsFiles(dir: string): Generator<string> {
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    if (e.name === 'node_modules' || e.name === 'build' || e.name === 'dist' || e.name.startsWith('.')) continue;
    const p = join(dir, e.name);
    if (e.isDirectory()) yield* tsFiles(p);
    else if (e.name.endsWith('.ts') && !e.name.endsWith('.d.ts')) yield p;
  }
}

/** Every module under root (by path relative to root) and the modules it imports. */
export function importGraph(root: string, dirs: readonly string[]): Graph {
  const g: Graph = new Map();
  for (const d of dirs) {
    for (const file of tsFiles(join(root, d))) {
      const from = relative(root, file);
      const to = new Set<string>();
      for (const m of readFileSync(file, 'utf8').matchAll(SPEC)) {
        to.add(relative(root, resolve(dirname(file), m[1].replace(/\.js$/, '.ts'))));
      }
      g.set(from, to);
    }
  }
  return g;
}

/** Each cycle once, as the modules around it (Tarjan's strongly connected components of size > 1, or a self-import). */
export function cycles(g: Graph): string[][] {
  let index = 0;
  const idx = new Map<string, number>(), low = new Map<string, number>(), stack: string[] = [], on = new Set<string>();
  const out: string[][] = [];
  const visit = (v: string) => {
    idx.set(v, index); low.set(v, index); index++;
    stack.push(v); on.add(v);
    for (const w of g.get(v) ?? []) {
      if (!g.has(w)) continue;
      if (!idx.has(w)) { visit(w); low.set(v, Math.min(low.get(v)!, low.get(w)!)); } else if (on.has(w)) low.set(v, Math.min(low.get(v)!, idx.get(w)!));
    }
    if (low.get(v) === idx.get(v)) {
      const scc: string[] = [];
      let w: string;
      do { w = stack.pop()!; on.delete(w); scc.push(w); } while (w !== v);
      if (scc.length > 1 || g.get(v)!.has(v)) out.push(scc.sort());
    }
  };
  for (const v of g.keys()) if (!idx.has(v)) visit(v);
  return out;
}
