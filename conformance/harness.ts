import { findPlugin } from '../lib/cni/invoke.js';
import { SUPPORTED_VERSIONS } from '../lib/cni/version.js';
import type { NetworkList } from '../lib/libcni/conf.js';
import { Lab } from './lab.js';
import { dataplaneCases } from './cases/dataplane.js';
import { specCases, versionCases } from './cases/spec.js';
import { Skip, type Case, type CaseContext } from './cases/types.js';

export type CaseStatus = 'pass' | 'fail' | 'skip' | 'known-failure';

export interface CaseResult {
  id: string;
  title: string;
  kind: 'spec' | 'dataplane';
  status: CaseStatus;
  ms: number;
  message?: string;
  /** For known failures: the spec section the plugin breaks. */
  specRef?: string;
}

export interface Report {
  network: string;
  plugins: string[];
  cniPath: string[];
  versions: string[];
  startedAt: string;
  durationMs: number;
  cases: CaseResult[];
  summary: { passed: number; failed: number; skipped: number; knownFailures: number };
  leftovers: string[];
}

export interface HarnessOptions {
  list: NetworkList;
  path: string[];
  only?: string[];
  skipDataplane?: boolean;
  /** Cases a given plugin is known to fail, with the spec section it breaks: they are reported, not hidden. */
  knownFailures?: Record<string, string>;
  log?: (line: string) => void;
  /** Starts every namespace and link name the run creates (default "tcf"). */
  labPrefix?: string;
}

async function runCases(lab: Lab, o: HarnessOptions, pluginFile: string, log: (l: string) => void): Promise<CaseResult[]> {
  const first = o.list.plugins[0];
  // Every plugin of the chain and every IPAM plugin they delegate to must speak a version for it to be testable.
  const types = new Set<string>();
  for (const p of o.list.plugins) {
    types.add(p.type as string);
    const ipamType = (p.ipam as { type?: unknown } | undefined)?.type;
    if (typeof ipamType === 'string' && ipamType) types.add(ipamType);
  }
  let versions: string[] = SUPPORTED_VERSIONS.slice();
  for (const t of types) {
    const info = await lab.runtime.versionInfo(t);
    versions = versions.filter((v) => info.supportedVersions.includes(v));
  }
  const ctx: CaseContext = { lab, plugin: first, pluginFile, versions, log };
  let cases: Case[] = [specCases[0], ...versionCases(versions), ...specCases.slice(1), ...(o.skipDataplane ? [] : dataplaneCases)];
  if (o.only?.length) cases = cases.filter((c) => o.only!.some((id) => c.id === id || c.id.startsWith(`${id}@`)));
  const results: CaseResult[] = [];
  for (const c of cases) {
    const t = Date.now();
    const r: CaseResult = { id: c.id, title: c.title, kind: c.kind, status: 'pass', ms: 0 };
    try {
      await c.run(ctx);
    } catch (e) {
      r.status = e instanceof Skip ? 'skip' : 'fail';
      r.message = (e as Error).message;
    }
    r.ms = Date.now() - t;
    const known = o.knownFailures?.[c.id];
    if (known && r.status === 'fail') { r.status = 'known-failure'; r.specRef = known; }
    results.push(r);
    log(`${r.status.padEnd(13)} ${c.id.padEnd(26)} ${String(r.ms).padStart(5)} ms  ${c.title}${r.message ? `\n${' '.repeat(14)}${r.message}` : ''}`);
  }
  return results;
}

/** Runs the case library against one network config and removes everything it created, whatever happens. */
export async function runConformance(o: HarnessOptions): Promise<Report> {
  const log = o.log ?? (() => {});
  const started = Date.now();
  const pluginFile = findPlugin(o.list.plugins[0].type as string, o.path);
  if (!pluginFile) throw new Error(`plugin "${String(o.list.plugins[0].type)}" not found in ${o.path.join(':')}`);
  const lab = new Lab(o.list, o.path, undefined, o.labPrefix);
  let cases: CaseResult[];
  try {
    cases = await runCases(lab, o, pluginFile, log);
  } finally {
    lab.close();
  }
  const count = (s: CaseStatus) => cases.filter((r) => r.status === s).length;
  return {
    network: o.list.name,
    plugins: o.list.plugins.map((p) => p.type as string),
    cniPath: o.path,
    versions: SUPPORTED_VERSIONS.slice(),
    startedAt: new Date(started).toISOString(),
    durationMs: Date.now() - started,
    cases,
    summary: { passed: count('pass'), failed: count('fail'), skipped: count('skip'), knownFailures: count('known-failure') },
    leftovers: lab.leftovers(),
  };
}
