import { writeFileSync } from 'node:fs';
import { loadNetworkList } from '../lib/libcni/conf.js';
import { runConformance, type Report } from './harness.js';

export interface ConformanceCliOptions {
  network: string;
  confDir: string;
  path: string[];
  report?: string;
  json?: boolean;
  skipDataplane?: boolean;
  only?: string;
}

export function summaryLine(r: Report): string {
  const s = r.summary;
  return `conformance of ${r.network} (${r.plugins.join(' -> ')}): ${r.cases.length} cases; pass ${s.passed}, fail ${s.failed}, skip ${s.skipped}, known failures ${s.knownFailures}; ${(r.durationMs / 1000).toFixed(1)} s${r.leftovers.length ? `; LEFTOVERS: ${r.leftovers.join(', ')}` : ''}`;
}

/** `cnictl conformance <network>`: exit 0 only when no case failed and nothing was left behind. */
export async function runConformanceCli(o: ConformanceCliOptions): Promise<number> {
  const list = loadNetworkList(o.confDir, o.network);
  const report = await runConformance({
    list, path: o.path, skipDataplane: o.skipDataplane, only: o.only?.split(',').filter(Boolean),
    log: o.json ? undefined : (l) => process.stdout.write(`${l}\n`),
  });
  if (o.report) writeFileSync(o.report, `${JSON.stringify(report, null, 2)}\n`);
  process.stdout.write(o.json ? `${JSON.stringify(report, null, 2)}\n` : `${summaryLine(report)}\n`);
  return report.summary.failed || report.leftovers.length ? 1 : 0;
}

// `npm run conformance -- <conf-dir> <network> [cni-path]`
if (process.argv[1]?.endsWith('conformance/cli.js')) {
  const [confDir = 'conformance/networks', network = 'ref-bridge', path = '/usr/lib/cni'] = process.argv.slice(2);
  runConformanceCli({ network, confDir, path: path.split(':'), report: 'conformance-report.json' })
    .then((code) => { process.exitCode = code; }, (e: unknown) => { process.stderr.write(`conformance: ${(e as Error).message}\n`); process.exitCode = 1; });
}
