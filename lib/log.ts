import { closeSync, fstatSync, mkdirSync, openSync, renameSync, statSync, writeSync } from 'node:fs';
import { dirname } from 'node:path';
import { sys } from './sys/index.js';
import { LOCK_EX, LOCK_UN } from './sys/types.js';

export type Level = 'error' | 'warn' | 'info' | 'debug';
const RANK: Record<Level, number> = { error: 0, warn: 1, info: 2, debug: 3 };

export interface Logger {
  error(msg: string, fields?: Record<string, unknown>): void;
  warn(msg: string, fields?: Record<string, unknown>): void;
  info(msg: string, fields?: Record<string, unknown>): void;
  debug(msg: string, fields?: Record<string, unknown>): void;
  /**
   * The one line per operation (command, container, network, duration, result). Only ever written to
   * the log file: without one, the runtime already has the result or error on stdout.
   */
  operation(op: Operation): void;
}

export interface Operation {
  command: string;
  containerID?: string;
  ifname?: string;
  netns?: string;
  network?: string;
  plugin: string;
  duration_ms: number;
  result: 'ok' | 'error';
  error?: { code: number; msg: string; details?: string };
}

export interface Rotation {
  /**
   * The file is rotated before a write would take it past this size. A soft limit: writers that
   * checked the size just before another rotated may each still add their one line to it.
   */
  maxBytes: number;
  /** Rotated files kept: file.1 (newest) .. file.N; at least 1. */
  keep: number;
}

export const DEFAULT_ROTATION: Rotation = { maxBytes: 10 * 1024 * 1024, keep: 3 };

export interface LogOptions {
  component: string;
  /** JSON lines go here when set; otherwise warnings and errors go to stderr as plain text. */
  file?: string;
  level?: Level;
  rotation?: Rotation;
}

export const isLevel = (v: unknown): v is Level => typeof v === 'string' && v in RANK;

/** Field names whose values never reach a log line, at any depth (the etcd password, tokens). */
const SECRET = /^(password|passwd|token|secret|credentials)$/i;
/** user:password@ in a URL (an etcd endpoint written that way ends up in error messages). */
const URL_USERINFO = /(\/\/)[^/@\s:]+:[^/@\s]+@/g;
const redact = (k: string, v: unknown) => {
  if (SECRET.test(k) && v !== undefined) return '[redacted]';
  return typeof v === 'string' && v.includes('@') ? v.replace(URL_USERINFO, '$1[redacted]@') : v;
};

/**
 * Appends one line with O_APPEND (so lines of concurrent plugin processes never overwrite each other)
 * and rotates by size first. Rotation renames under an flock beside the file, and only if the path still
 * names the file this process opened: a process that lost the race finds the file already rotated and
 * writes on. A line written through a descriptor opened just before a rotation lands in file.1, so
 * no line is ever lost. Synchronous throughout: a plugin lives ~20 ms and must not wait on streams.
 */
export function appendLine(file: string, line: string, rot: Rotation = DEFAULT_ROTATION): void {
  let fd = openAppend(file);
  try {
    const size = fstatSync(fd).size;
    if (size > 0 && size + Buffer.byteLength(line) > rot.maxBytes) {
      rotate(file, fd, rot);
      closeSync(fd);
      fd = openAppend(file);
    }
    writeSync(fd, line);
  } finally { closeSync(fd); }
}

function openAppend(file: string): number {
  try {
    return openSync(file, 'a', 0o600);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
    mkdirSync(dirname(file), { recursive: true, mode: 0o700 });
    return openSync(file, 'a', 0o600);
  }
}

function rotate(file: string, fd: number, rot: Rotation): void {
  const lock = openSync(`${file}.lock`, 'a', 0o600);
  try {
    sys.flock(lock, LOCK_EX);
    try {
      let current;
      try { current = statSync(file); } catch { return; }
      const mine = fstatSync(fd);
      // Another process rotated since we opened it: the path names a fresh file, ours is file.1 now.
      if (current.ino !== mine.ino || current.dev !== mine.dev) return;
      // Each rename overwrites the next name, so the oldest file drops off the end of the series.
      for (let i = rot.keep - 1; i >= 1; i--) {
        try { renameSync(`${file}.${i}`, `${file}.${i + 1}`); } catch { /* a gap in the series */ }
      }
      renameSync(file, `${file}.1`);
    } finally { sys.flock(lock, LOCK_UN); }
  } finally { closeSync(lock); }
}

/**
 * Plugins must keep stdout for the one result document, so logs go to a file (one JSON object per
 * line, easy to grep and to ship) or, failing that, to stderr, which runtimes copy into their own logs.
 */
export function createLogger(o: LogOptions): Logger {
  const max = RANK[o.level ?? (o.file ? 'info' : 'warn')];
  const rot = o.rotation ?? DEFAULT_ROTATION;
  const toFile = (level: Level, msg: string, fields?: object): boolean => {
    if (!o.file) return false;
    const line = JSON.stringify({ time: new Date().toISOString(), level, component: o.component, pid: process.pid, msg, ...fields }, redact);
    try {
      appendLine(o.file, `${line}\n`, rot);
      return true;
    } catch {
      // An unwritable log file must not fail the operation; the caller falls back to stderr.
      return false;
    }
  };
  const write = (level: Level, msg: string, fields?: Record<string, unknown>) => {
    if (RANK[level] > max) return;
    if (toFile(level, msg, fields)) return;
    const extra = fields && Object.keys(fields).length ? ` ${JSON.stringify(fields, redact)}` : '';
    writeSync(2, `${o.component}: ${level}: ${redact('msg', msg) as string}${extra}\n`);
  };
  return {
    error: (m, f) => write('error', m, f),
    warn: (m, f) => write('warn', m, f),
    info: (m, f) => write('info', m, f),
    debug: (m, f) => write('debug', m, f),
    operation: (op) => {
      const level: Level = op.result === 'ok' ? 'info' : 'error';
      if (RANK[level] <= max) toFile(level, 'operation', op);
    },
  };
}
