import { accessSync, constants, statSync, writeSync } from 'node:fs';
import { childProcess } from '../builtin.js';
import { join } from 'node:path';
import { CniError, ErrorCode } from './errors.js';
import type { Command } from './env.js';
import { parseResult } from './result.js';
import { buildContext, dispatch, type Context, type PluginSpec } from './skel.js';
import { mark } from '../trace.js';
import type { Result } from './types.js';

/** Plugins compiled into this binary; delegating to one of them costs a function call, not an exec. */
const inProcess = new Map<string, PluginSpec<any>>();

export function registerInProcess(type: string, spec: PluginSpec<any>): void {
  inProcess.set(type, spec);
}

/** The first regular, executable file named `type` in the search path (the runtime's CNI_PATH). */
export function findPlugin(type: string, path: readonly string[]): string | null {
  if (!type || type.includes('/') || type.includes('\\')) return null;
  for (const dir of path) {
    const file = join(dir, type);
    try {
      if (!statSync(file).isFile()) continue;
      accessSync(file, constants.X_OK);
      return file;
    } catch { /* not here */ }
  }
  return null;
}

/**
 * Runs the IPAM (or any delegated) plugin for `command` exactly as the spec says: same environment
 * with CNI_COMMAND replaced, same full config on stdin, its stderr passed on to ours. Its error comes
 * back as a CniError with its own code, message and details. No clock of ours cuts it short: a
 * delegate on a loaded node may queue behind a hundred others for its lock and is still working, and
 * the runtime that exec'd us holds the one deadline that matters (libcni's, through its context), as
 * the reference plugins leave it.
 */
export async function delegate(command: Command, type: string, ctx: Context<any>): Promise<Result | undefined> {
  const env = { ...ctx.env, CNI_COMMAND: command };
  const local = inProcess.get(type);
  if (local) {
    const sub = buildContext(local, command, env, ctx.raw);
    mark(`${type}: context`);
    const result = await dispatch(local, sub);
    return result && command === 'ADD' ? result : undefined;
  }
  const file = findPlugin(type, ctx.args.path);
  if (!file) {
    const where = ctx.args.path.length ? ctx.args.path.join(':') : '(CNI_PATH is empty)';
    throw new CniError(ErrorCode.InvalidNetworkConfig, `plugin "${type}" not found in CNI_PATH ${where}`, `CNI_PATH=${ctx.env.CNI_PATH ?? ''}`);
  }
  const run = childProcess().spawnSync(file, [], {
    env, input: ctx.raw, stdio: ['pipe', 'pipe', 'pipe'],
    maxBuffer: 16 << 20,
  });
  if (run.stderr?.length) writeSync(2, run.stderr);
  if (run.error) {
    throw new CniError(ErrorCode.Internal, `running ${type} ${command}: ${run.error.message}`, file);
  }
  const out = run.stdout?.toString('utf8').trim() ?? '';
  if (run.status !== 0) {
    let parsed: { code?: unknown; msg?: unknown; details?: unknown } | undefined;
    try { parsed = JSON.parse(out); } catch { /* not a CNI error document */ }
    if (parsed && typeof parsed.code === 'number' && typeof parsed.msg === 'string') {
      throw new CniError(parsed.code, `${type}: ${parsed.msg}`, typeof parsed.details === 'string' ? parsed.details : '');
    }
    const why = run.signal ? `killed by ${run.signal}` : `exit status ${run.status}`;
    const tail = run.stderr?.toString('utf8').trim().split('\n').slice(-3).join(' | ');
    throw new CniError(ErrorCode.Internal, `${type} ${command} failed (${why})${tail ? `: ${tail}` : ''}`, out.slice(0, 500));
  }
  if (command !== 'ADD') return undefined;
  let json: unknown;
  try { json = JSON.parse(out); } catch (e) {
    throw new CniError(ErrorCode.DecodingFailure, `${type} ADD printed a result that is not JSON: ${(e as Error).message}`, out.slice(0, 500));
  }
  return parseResult(json, ctx.version, `${type} result`);
}
