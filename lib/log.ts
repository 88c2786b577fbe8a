import { appendFileSync, writeSync } from 'node:fs';

export type Level = 'error' | 'warn' | 'info' | 'debug';
const RANK: Record<Level, number> = { error: 0, warn: 1, info: 2, debug: 3 };

export interface Logger {
  error(msg: string, fields?: Record<string, unknown>): void;
  warn(msg: string, fields?: Record<string, unknown>): void;
  info(msg: string, fields?: Record<string, unknown>): void;
  debug(msg: string, fields?: Record<string, unknown>): void;
}

export interface LogOptions {
  component: string;
  /** JSON lines go here when set; otherwise warnings and errors go to stderr as plain text. */
  file?: string;
  level?: Level;
}

export const isLevel = (v: unknown): v is Level => typeof v === 'string' && v in RANK;

/**
 * Plugins must keep stdout for the one result document, so logs go to a file (one JSON object per
 * line, easy to grep and to ship) or, failing that, to stderr, which runtimes copy into their own logs.
 */
export function createLogger(o: LogOptions): Logger {
  const max = RANK[o.level ?? (o.file ? 'info' : 'warn')];
  const write = (level: Level, msg: string, fields?: Record<string, unknown>) => {
    if (RANK[level] > max) return;
    if (o.file) {
      const line = JSON.stringify({ time: new Date().toISOString(), level, component: o.component, pid: process.pid, msg, ...fields });
      try {
        appendFileSync(o.file, `${line}\n`, { mode: 0o600 });
        return;
      } catch {
        // An unwritable log file must not fail the operation; fall through to stderr.
      }
    }
    const extra = fields && Object.keys(fields).length ? ` ${JSON.stringify(fields)}` : '';
    writeSync(2, `${o.component}: ${level}: ${msg}${extra}\n`);
  };
  return {
    error: (m, f) => write('error', m, f),
    warn: (m, f) => write('warn', m, f),
    info: (m, f) => write('info', m, f),
    debug: (m, f) => write('debug', m, f),
  };
}
