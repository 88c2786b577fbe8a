import { readFileSync, writeSync } from 'node:fs';
import { createLogger, DEFAULT_ROTATION, isLevel, type Logger, type Rotation } from '../log.js';
import { mark } from '../trace.js';
import { isCurrentNetns, NetnsNotFoundError } from '../netns/netns.js';
import { CniError, ErrorCode, asCniError, invalidConfig } from './errors.js';
import { readCmdArgs, readCommand, type CmdArgs, type Command } from './env.js';
import { parseResult, resultJSON } from './result.js';
import type { Attachment, NetConf, Result, VersionInfo } from './types.js';
import { networkNameProblem } from './validate.js';
import { CURRENT_VERSION, SUPPORTED_VERSIONS, requireSupported, versionAtLeast } from './version.js';

/** Everything one invocation knows: protocol parameters, the parsed config and the exact bytes it came as. */
export interface Context<C extends NetConf = NetConf> {
  args: CmdArgs;
  conf: C;
  /** The stdin bytes, passed unchanged to delegates as the spec requires. */
  raw: Buffer;
  version: string;
  env: NodeJS.ProcessEnv;
  log: Logger;
  prevResult?: Result;
}

export interface PluginSpec<C extends NetConf = NetConf> {
  name: string;
  about: string;
  versions?: readonly string[];
  /** Validates plugin-specific fields; throws CniError 7 naming the field. */
  parseConfig?(conf: NetConf, command: Command): C;
  add(ctx: Context<C>): Promise<Result> | Result;
  del(ctx: Context<C>): Promise<void> | void;
  check(ctx: Context<C>): Promise<void> | void;
  status?(ctx: Context<C>): Promise<void> | void;
  gc?(ctx: Context<C>, valid: Attachment[]): Promise<void> | void;
}

export interface PluginIO {
  env: NodeJS.ProcessEnv;
  readStdin(): Buffer;
  stdout(s: string): void;
}

export const processIO: PluginIO = {
  env: process.env,
  readStdin: () => {
    try {
      return readFileSync(0);
    } catch (e) {
      // No stdin at all (closed descriptor) reads as empty; anything else is an I/O failure.
      const code = (e as NodeJS.ErrnoException).code;
      if (code === 'EAGAIN' || code === 'EBADF' || code === 'ENXIO') return Buffer.alloc(0);
      throw new CniError(ErrorCode.IOFailure, `reading the network configuration from stdin: ${(e as Error).message}`);
    }
  },
  stdout: (s) => { writeSync(1, s); },
};

type Obj = Record<string, unknown>;

function decodeConfig(raw: Buffer): Obj {
  let v: unknown;
  try {
    v = JSON.parse(raw.toString('utf8'));
  } catch (e) {
    throw new CniError(ErrorCode.DecodingFailure, `cannot decode the network configuration: ${(e as Error).message}`,
      raw.length ? `stdin held ${raw.length} bytes that are not JSON` : 'stdin was empty');
  }
  if (typeof v !== 'object' || v === null || Array.isArray(v)) {
    throw new CniError(ErrorCode.DecodingFailure, 'the network configuration must be a JSON object', `got ${Array.isArray(v) ? 'a list' : typeof v}`);
  }
  return v as Obj;
}

/**
 * The config's "log" section: {file, level, maxSizeMB, maxFiles}; the environment (TETHER_LOG_FILE,
 * TETHER_LOG_LEVEL) fills what it leaves out. A malformed section is a config error like any other.
 */
function loggerFor(spec: PluginSpec<any>, conf: Obj | undefined, env: NodeJS.ProcessEnv): Logger {
  const raw = conf?.log;
  if (raw !== undefined && (typeof raw !== 'object' || raw === null || Array.isArray(raw))) throw invalidConfig('log', 'must be an object {file, level, maxSizeMB, maxFiles}', raw);
  const log = (raw ?? {}) as Obj;
  if (log.file !== undefined && (typeof log.file !== 'string' || !log.file.startsWith('/'))) throw invalidConfig('log.file', 'must be an absolute path', log.file);
  if (log.level !== undefined && !isLevel(log.level)) throw invalidConfig('log.level', 'must be one of error, warn, info, debug', log.level);
  const rotation: Rotation = { ...DEFAULT_ROTATION };
  if (log.maxSizeMB !== undefined) {
    if (typeof log.maxSizeMB !== 'number' || !(log.maxSizeMB > 0)) throw invalidConfig('log.maxSizeMB', 'must be a positive number of MiB', log.maxSizeMB);
    rotation.maxBytes = Math.round(log.maxSizeMB * 1024 * 1024);
  }
  if (log.maxFiles !== undefined) {
    if (!Number.isInteger(log.maxFiles) || (log.maxFiles as number) < 1 || (log.maxFiles as number) > 100) throw invalidConfig('log.maxFiles', 'must be a whole number of rotated files to keep, 1 to 100', log.maxFiles);
    rotation.keep = log.maxFiles as number;
  }
  const file = typeof log.file === 'string' ? log.file : env.TETHER_LOG_FILE || undefined;
  const level = isLevel(log.level) ? log.level : isLevel(env.TETHER_LOG_LEVEL) ? env.TETHER_LOG_LEVEL : undefined;
  return createLogger({ component: spec.name, file, level, rotation });
}

/** What an invocation learnt before it failed, so even a rejected request gets its operation line. */
export interface Seen { log?: Logger; network?: string }

/** Validates the common part of a config and builds the context; shared by exec'd and in-process plugins. */
export function buildContext<C extends NetConf>(spec: PluginSpec<C>, command: Command, env: NodeJS.ProcessEnv, raw: Buffer, seen: Seen = {}): Context<C> {
  const args = readCmdArgs(command, env);
  const obj = decodeConfig(raw);
  if (typeof obj.name === 'string') seen.network = obj.name;
  let log: Logger;
  try {
    log = loggerFor(spec, obj, env);
  } catch (e) {
    // DEL and GC must be able to clean up whatever the config says: a bad "log" section falls back to
    // the environment's logger there, and is an error everywhere else.
    if (command !== 'DEL' && command !== 'GC') throw e;
    log = loggerFor(spec, undefined, env);
    log.warn(`ignoring the config's log section for ${command}: ${(e as Error).message}`);
  }
  seen.log = log;
  if (typeof obj.cniVersion !== 'string' || obj.cniVersion === '') {
    throw new CniError(ErrorCode.InvalidNetworkConfig, 'invalid network config: "cniVersion" is required (a string such as "1.1.0")', 'cniVersion');
  }
  const version = requireSupported(obj.cniVersion, spec.versions ?? SUPPORTED_VERSIONS);
  if (command === 'CHECK' && !versionAtLeast(version, '0.4.0')) {
    throw new CniError(ErrorCode.IncompatibleVersion, `config version ${version} does not allow CHECK (needs 0.4.0 or later)`);
  }
  if ((command === 'STATUS' || command === 'GC') && !versionAtLeast(version, '1.1.0')) {
    throw new CniError(ErrorCode.IncompatibleVersion, `config version ${version} does not allow ${command} (needs 1.1.0 or later)`);
  }
  if (typeof obj.name !== 'string') {
    throw new CniError(ErrorCode.InvalidNetworkConfig, 'invalid network config: "name" is required (the network name)', 'name');
  }
  const nameProblem = networkNameProblem(obj.name);
  if (nameProblem) throw new CniError(ErrorCode.InvalidNetworkConfig, `invalid network config: "name" ${nameProblem}, got ${JSON.stringify(obj.name)}`, 'name');
  if (typeof obj.type !== 'string' || obj.type === '') {
    throw new CniError(ErrorCode.InvalidNetworkConfig, 'invalid network config: "type" is required (the plugin name)', 'type');
  }
  const base = obj as NetConf;
  const conf = spec.parseConfig ? spec.parseConfig(base, command) : base as C;
  const ctx: Context<C> = { args, conf, raw, version, env, log };
  if (obj.prevResult !== undefined && obj.prevResult !== null) {
    ctx.prevResult = parseResult(obj.prevResult, version, 'prevResult', ErrorCode.InvalidNetworkConfig);
  }
  return ctx;
}

/** Attachments still in use, from either key libcni sends. */
export function validAttachments(conf: NetConf): Attachment[] {
  const list = conf['cni.dev/valid-attachments'] ?? conf['cni.dev/attachments'];
  if (list === undefined) return [];
  if (!Array.isArray(list)) throw new CniError(ErrorCode.InvalidNetworkConfig, 'invalid network config: "cni.dev/valid-attachments" must be a list', 'cni.dev/valid-attachments');
  return list.map((a, i) => {
    const o = a as Obj;
    if (typeof o?.containerID !== 'string' || typeof o?.ifname !== 'string') {
      throw new CniError(ErrorCode.InvalidNetworkConfig, `invalid network config: "cni.dev/valid-attachments[${i}]" needs string containerID and ifname`, 'cni.dev/valid-attachments');
    }
    return { containerID: o.containerID, ifname: o.ifname };
  });
}

/** Runs one command of an already-built context; returns the result for ADD. */
export async function dispatch<C extends NetConf>(spec: PluginSpec<C>, ctx: Context<C>): Promise<Result | undefined> {
  switch (ctx.args.command) {
    case 'ADD': return spec.add(ctx);
    case 'DEL': await spec.del(ctx); return undefined;
    case 'CHECK': await spec.check(ctx); return undefined;
    case 'STATUS': if (spec.status) await spec.status(ctx); return undefined;
    case 'GC': if (spec.gc) await spec.gc(ctx, validAttachments(ctx.conf)); return undefined;
    default: throw new CniError(ErrorCode.InvalidEnvironment, `unexpected command ${ctx.args.command}`, 'CNI_COMMAND');
  }
}

function versionReply(spec: PluginSpec<any>, raw: Buffer): VersionInfo {
  const supported = [...(spec.versions ?? SUPPORTED_VERSIONS)];
  let asked: unknown;
  try { asked = raw.length ? (JSON.parse(raw.toString('utf8')) as Obj).cniVersion : undefined; } catch { /* answer anyway */ }
  return { cniVersion: typeof asked === 'string' && supported.includes(asked) ? asked : CURRENT_VERSION, supportedVersions: supported };
}

/** The whole life of a plugin process: returns the exit status. Never throws, never prints a stack on stdout. */
export async function runPlugin<C extends NetConf>(spec: PluginSpec<C>, io: PluginIO = processIO): Promise<number> {
  const started = performance.now();
  let version: string | undefined;
  let command: Command | undefined;
  const seen: Seen = {};
  const finish = (e?: CniError) => {
    if (!command || command === 'VERSION') return;
    // The environment's logger when the config never got as far as naming one (e.g. it is not JSON).
    // Logging never changes the answer the runtime already has on stdout.
    try {
      const log = seen.log ?? loggerFor(spec, undefined, io.env);
      log.operation({
        command, containerID: io.env.CNI_CONTAINERID, ifname: io.env.CNI_IFNAME, netns: io.env.CNI_NETNS,
        network: seen.network, plugin: spec.name, duration_ms: Math.round((performance.now() - started) * 100) / 100,
        ...(e ? { result: 'error', error: { code: e.code, msg: e.message, ...(e.details ? { details: e.details } : {}) } } : { result: 'ok' }),
      });
    } catch { /* an unusable log is not the operation's failure */ }
  };
  try {
    command = readCommand(io.env);
    if (!command) {
      writeSync(2, `${spec.about}\nCNI protocol versions supported: ${(spec.versions ?? SUPPORTED_VERSIONS).join(', ')}\n`);
      return 0;
    }
    mark('skel');
    const raw = io.readStdin();
    if (command === 'VERSION') {
      io.stdout(JSON.stringify(versionReply(spec, raw)));
      return 0;
    }
    const ctx = buildContext(spec, command, io.env, raw, seen);
    mark('context');
    version = ctx.version;
    if ((command === 'ADD' || command === 'CHECK') && !['1', 'true'].includes(io.env.CNI_NETNS_OVERRIDE ?? '')) {
      let own = false;
      try { own = isCurrentNetns(ctx.args.netns); } catch (e) {
        if (!(e instanceof NetnsNotFoundError)) throw e;
        throw new CniError(ErrorCode.InvalidEnvironment, `CNI_NETNS ${ctx.args.netns} does not exist`, 'CNI_NETNS');
      }
      if (own) throw new CniError(ErrorCode.InvalidEnvironment, `CNI_NETNS ${ctx.args.netns} is the plugin's own network namespace, not a container's`, 'CNI_NETNS');
    }
    const result = await dispatch(spec, ctx);
    if (command === 'ADD') {
      if (!result) throw new CniError(ErrorCode.Internal, 'plugin produced no result');
      io.stdout(resultJSON(result, ctx.version));
      mark('printed');
    }
    finish();
    return 0;
  } catch (e) {
    const err = asCniError(e);
    if (err.code === ErrorCode.Internal && e instanceof Error && e.stack) {
      (seen.log ?? createLogger({ component: spec.name })).error(err.message, { stack: e.stack });
    }
    io.stdout(JSON.stringify(err.toJSON(version ?? CURRENT_VERSION)));
    finish(err);
    return 1;
  }
}
