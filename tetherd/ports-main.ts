import { writeSync } from 'node:fs';
import { parseArgv, str, UsageError } from '../lib/argv.js';
import { createLogger, isLevel, type Logger } from '../lib/log.js';
import { LoopbackPortsProxy } from './ports-proxy.js';
import { AgentConfigError, type Obj } from './config.js';

/** The agent's `"portsProxy"` section: `false` turns the [::1] proxy off, `{"intervalMs": N}` sets its poll. */
export function portsProxyOptions(raw: unknown): { enabled: boolean; intervalMs: number } {
  const v = (raw as Obj | null)?.portsProxy;
  if (v === undefined || v === true) return { enabled: true, intervalMs: 1000 };
  if (v === false) return { enabled: false, intervalMs: 1000 };
  const ms = (v as Obj | null)?.intervalMs;
  if (typeof v !== 'object' || v === null || Array.isArray(v) || (ms !== undefined && (typeof ms !== 'number' || !Number.isInteger(ms) || ms < 50 || ms > 60_000))) {
    throw new AgentConfigError('portsProxy', 'false, true or {"intervalMs": 50..60000}', v);
  }
  return { enabled: true, intervalMs: (ms as number | undefined) ?? 1000 };
}

/** Starts the [::1] proxy beside an agent mode (`tetherd run`), unless its config turns it off. */
export function startPortsProxy(raw: unknown): { stop(): void } {
  const o = portsProxyOptions(raw);
  if (!o.enabled) return { stop() {} };
  const r = raw as Obj;
  const log = createLogger({ component: 'tetherd ports-proxy', file: typeof r.logFile === 'string' ? r.logFile : undefined, level: isLevel(r.logLevel) ? r.logLevel : undefined });
  const p = new LoopbackPortsProxy(log, o.intervalMs);
  p.start();
  return p;
}

/** `tetherd ports-proxy`: the proxy alone, for a node that runs no overlay agent (tether-bridge only). */
export async function portsProxyMain(argv: string[]): Promise<number> {
  let log: Logger;
  let intervalMs = 1000;
  try {
    const p = parseArgv(argv, ['interval-ms', 'log-file', 'log-level'], []);
    if (p.positional.length) throw new UsageError(`unexpected ${p.positional.join(' ')}`);
    const ms = str(p, 'interval-ms');
    if (ms !== undefined) {
      intervalMs = Number(ms);
      if (!Number.isInteger(intervalMs) || intervalMs < 50 || intervalMs > 60_000) throw new UsageError('--interval-ms must be an integer from 50 to 60000');
    }
    const level = str(p, 'log-level');
    if (level !== undefined && !isLevel(level)) throw new UsageError('--log-level must be error, warn, info or debug');
    log = createLogger({ component: 'tetherd ports-proxy', file: str(p, 'log-file'), level: level as never });
  } catch (e) {
    writeSync(2, `tetherd ports-proxy: ${(e as Error).message}\nUsage: tetherd ports-proxy [--interval-ms 1000] [--log-file FILE] [--log-level LEVEL]\n`);
    return 2;
  }
  const proxy = new LoopbackPortsProxy(log, intervalMs);
  proxy.start();
  writeSync(1, `tetherd: ready: ports proxy on [::1], polling the port table every ${intervalMs} ms\n`);
  return new Promise<number>((resolve) => {
    for (const sig of ['SIGTERM', 'SIGINT'] as const) process.once(sig, () => { proxy.stop(); resolve(0); });
  });
}
