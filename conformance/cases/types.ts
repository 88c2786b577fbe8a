import type { Lab } from '../lab.js';

export interface CaseContext {
  lab: Lab;
  /** The chain's first plugin (the interface plugin), its config object and binary. */
  plugin: Record<string, unknown>;
  pluginFile: string;
  /** Versions both the plugin and tether support, oldest first. */
  versions: string[];
  log(line: string): void;
}

export interface Case {
  id: string;
  title: string;
  kind: 'spec' | 'dataplane';
  run(ctx: CaseContext): Promise<void>;
}

/** A case that does not apply to this plugin (never counted as passed). */
export class Skip extends Error {
  constructor(reason: string) { super(reason); this.name = 'Skip'; }
}

export class CaseFailure extends Error {
  constructor(msg: string) { super(msg); this.name = 'CaseFailure'; }
}

export function expect(cond: unknown, msg: string): asserts cond {
  if (!cond) throw new CaseFailure(msg);
}

/** Polls until fn returns no problem (an empty list) or the time runs out; kernel cleanup can be asynchronous. */
export async function eventually(fn: () => string[], timeoutMs = 3000): Promise<string[]> {
  const until = Date.now() + timeoutMs;
  for (;;) {
    const problems = fn();
    if (!problems.length || Date.now() > until) return problems;
    await new Promise((r) => setTimeout(r, 50));
  }
}
