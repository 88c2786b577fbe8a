import { writeSync } from 'node:fs';
import { formatCniArgs } from '../cni/args.js';
import { CniError, ErrorCode } from '../cni/errors.js';
import { findPlugin } from '../cni/invoke.js';
import { formatResult, parseResult } from '../cni/result.js';
import type { Attachment, Result, VersionInfo } from '../cni/types.js';
import { containerIDProblem, ifnameProblem } from '../cni/validate.js';
import { SUPPORTED_VERSIONS, pickVersion, versionAtLeast } from '../cni/version.js';
import { cacheFile, deleteCache, listCache, readCache, writeCache, type CacheEntry } from './cache.js';
import type { NetworkList } from './conf.js';
import { parseNetworkList } from './conf.js';
import { execPlugin, type ExecOutcome } from './exec.js';

export interface RuntimeOptions {
  /** Where plugins are found; also passed to them as CNI_PATH. */
  path: string[];
  cacheDir: string;
  /** Per plugin exec. */
  timeoutMs: number;
  /** Run every plugin inside this namespace instead of our own (the harness's throwaway host). */
  pluginNetns?: string;
  /** Base environment for plugins (defaults to ours). */
  env?: NodeJS.ProcessEnv;
}

/** One attachment's parameters (libcni's RuntimeConf). */
export interface AttachmentSpec {
  containerID: string;
  netns: string;
  ifname: string;
  args?: [string, string][];
  capabilityArgs?: Record<string, unknown>;
}

/** A plugin in a chain failed: which one, for which operation, with the plugin's own code, message, details. */
export class PluginFailure extends CniError {
  readonly plugin: string;
  readonly operation: string;
  constructor(plugin: string, network: string, operation: string, code: number, msg: string, details: string) {
    super(code, `plugin type="${plugin}" name="${network}" failed (${operation}): ${msg}`, details);
    this.name = 'PluginFailure';
    this.plugin = plugin;
    this.operation = operation;
  }
}

type Command = 'ADD' | 'DEL' | 'CHECK' | 'GC' | 'STATUS';
const OP: Record<Command, string> = { ADD: 'add', DEL: 'delete', CHECK: 'check', GC: 'gc', STATUS: 'status' };

/** A runtime in the libcni sense: runs a network's plugin chain for an attachment and keeps the result cache. */
export class CniRuntime {
  readonly opts: RuntimeOptions;
  /** Timing of the last plugin execs, for the benchmark and --verbose output. */
  lastExecs: { plugin: string; command: string; ms: number; stdout: string }[] = [];

  constructor(opts: RuntimeOptions) { this.opts = opts; }

  /** The version a list runs at: the highest of cniVersion ∪ cniVersions this runtime implements. */
  version(list: NetworkList): string {
    const v = pickVersion(list.cniVersion, list.cniVersions, SUPPORTED_VERSIONS);
    if (!v) {
      const asked = [list.cniVersion, ...(list.cniVersions ?? [])].filter(Boolean).join(', ') || '(none)';
      throw new CniError(ErrorCode.IncompatibleVersion, `network "${list.name}" asks for CNI version ${asked}; cnictl implements ${SUPPORTED_VERSIONS.join(', ')}`);
    }
    return v;
  }

  private pluginFile(type: string): string {
    const file = findPlugin(type, this.opts.path);
    if (!file) throw new CniError(ErrorCode.InvalidNetworkConfig, `plugin "${type}" not found in ${this.opts.path.join(':') || '(empty CNI path)'}`, type);
    return file;
  }

  private env(command: Command, a?: AttachmentSpec): NodeJS.ProcessEnv {
    const env: NodeJS.ProcessEnv = { ...(this.opts.env ?? process.env) };
    for (const k of Object.keys(env)) if (k.startsWith('CNI_')) delete env[k];
    env.CNI_COMMAND = command;
    env.CNI_PATH = this.opts.path.join(':');
    if (command === 'GC') {
      env.CNI_CONTAINERID = ''; env.CNI_NETNS = ''; env.CNI_IFNAME = '';
    } else if (a) {
      env.CNI_CONTAINERID = a.containerID;
      env.CNI_NETNS = a.netns;
      env.CNI_IFNAME = a.ifname;
      if (a.args?.length) env.CNI_ARGS = formatCniArgs(a.args);
    }
    return env;
  }

  /** The config one plugin receives: its object plus name, cniVersion, runtimeConfig for its capabilities, prevResult. */
  pluginConfig(list: NetworkList, plugin: Record<string, unknown>, version: string, extra: { prevResult?: Result; a?: AttachmentSpec; gc?: Attachment[] }): string {
    const conf: Record<string, unknown> = { ...plugin, name: list.name, cniVersion: version };
    const caps = plugin.capabilities as Record<string, unknown> | undefined;
    if (extra.a?.capabilityArgs && caps) {
      const rc: Record<string, unknown> = {};
      for (const [k, v] of Object.entries(extra.a.capabilityArgs)) if (caps[k] === true) rc[k] = v;
      if (Object.keys(rc).length) conf.runtimeConfig = rc;
    }
    if (extra.prevResult) conf.prevResult = formatResult(extra.prevResult, version);
    if (extra.gc) {
      conf['cni.dev/valid-attachments'] = extra.gc;
      conf['cni.dev/attachments'] = extra.gc;
    }
    return JSON.stringify(conf);
  }

  private async run(command: Command, list: NetworkList, plugin: Record<string, unknown>, stdin: string, a?: AttachmentSpec): Promise<ExecOutcome> {
    const type = plugin.type as string;
    const out = await execPlugin({
      file: this.pluginFile(type), env: this.env(command, a), stdin, timeoutMs: this.opts.timeoutMs, netns: this.opts.pluginNetns,
    });
    this.lastExecs.push({ plugin: type, command, ms: out.ms, stdout: out.stdout });
    if (out.stderr && out.status === 0) writeSync(2, out.stderr);
    if (out.timedOut) {
      throw new PluginFailure(type, list.name, OP[command], ErrorCode.TryAgainLater, `timed out after ${this.opts.timeoutMs} ms and was killed`, '');
    }
    if (out.status !== 0) {
      const text = out.stdout.trim();
      if (!text) {
        const why = out.signal ? `killed by ${out.signal}` : `exit status ${out.status}`;
        throw new PluginFailure(type, list.name, OP[command], ErrorCode.Internal, `netplugin failed (${why}): ${JSON.stringify(out.stderr.trim())}`, '');
      }
      let e: { code?: unknown; msg?: unknown; details?: unknown };
      try { e = JSON.parse(text); } catch {
        throw new PluginFailure(type, list.name, OP[command], ErrorCode.Internal, `netplugin failed but error parsing its diagnostic message: ${JSON.stringify(text.slice(0, 300))}`, '');
      }
      throw new PluginFailure(type, list.name, OP[command], typeof e.code === 'number' ? e.code : ErrorCode.Internal,
        typeof e.msg === 'string' ? e.msg : text, typeof e.details === 'string' ? e.details : '');
    }
    return out;
  }

  private checkAttachment(a: AttachmentSpec): void {
    const idProblem = containerIDProblem(a.containerID);
    if (idProblem) throw new CniError(ErrorCode.InvalidEnvironment, `container ID ${JSON.stringify(a.containerID)} ${idProblem}`, 'containerID');
    const ifProblem = ifnameProblem(a.ifname);
    if (ifProblem) throw new CniError(ErrorCode.InvalidEnvironment, `interface name ${JSON.stringify(a.ifname)} ${ifProblem}`, 'ifname');
  }

  /** ADD through the chain in order; the cache is written only when every plugin succeeded. */
  async add(list: NetworkList, a: AttachmentSpec): Promise<Result> {
    this.checkAttachment(a);
    this.lastExecs = [];
    const version = this.version(list);
    let prev: Result | undefined;
    for (const plugin of list.plugins) {
      const out = await this.run('ADD', list, plugin, this.pluginConfig(list, plugin, version, { prevResult: prev, a }), a);
      let json: unknown;
      try { json = JSON.parse(out.stdout); } catch (e) {
        throw new PluginFailure(plugin.type as string, list.name, 'add', ErrorCode.DecodingFailure, `printed a result that is not JSON: ${(e as Error).message}`, out.stdout.slice(0, 300));
      }
      prev = parseResult(json, version, `result of ${plugin.type as string}`);
    }
    const result = prev ?? { cniVersion: version };
    const entry: CacheEntry = {
      kind: 'cniCacheV1', containerId: a.containerID, ifName: a.ifname, networkName: list.name,
      config: list.bytes.toString('base64'), result: formatResult(result, version),
    };
    if (a.netns) entry.netns = a.netns;
    if (a.args?.length) entry.cniArgs = a.args;
    if (a.capabilityArgs && Object.keys(a.capabilityArgs).length) entry.capabilityArgs = a.capabilityArgs;
    writeCache(this.opts.cacheDir, entry);
    return result;
  }

  /** The cached final result, parsed; an unreadable record is dropped (a crash must not wedge DEL forever). */
  cachedResult(list: NetworkList, a: AttachmentSpec, version: string, dropCorrupt: boolean): Result | undefined {
    const read = readCache(this.opts.cacheDir, list.name, a.containerID, a.ifname);
    if ('missing' in read) return undefined;
    if ('corrupt' in read) {
      if (dropCorrupt) {
        writeSync(2, `cnictl: warning: ignoring unreadable cache record ${read.corrupt}\n`);
        deleteCache(this.opts.cacheDir, list.name, a.containerID, a.ifname);
        return undefined;
      }
      throw new CniError(ErrorCode.DecodingFailure, `cached result unreadable: ${read.corrupt}`);
    }
    try {
      return parseResult(read.entry.result, version, `cached result ${cacheFile(this.opts.cacheDir, list.name, a.containerID, a.ifname)}`);
    } catch (e) {
      if (!dropCorrupt) throw e;
      deleteCache(this.opts.cacheDir, list.name, a.containerID, a.ifname);
      return undefined;
    }
  }

  /** DEL through the chain in reverse, each plugin given the cached result; the cache goes only when all succeeded. */
  async del(list: NetworkList, a: AttachmentSpec): Promise<void> {
    this.lastExecs = [];
    const version = this.version(list);
    const prev = versionAtLeast(version, '0.4.0') ? this.cachedResult(list, a, version, true) : undefined;
    for (const plugin of [...list.plugins].reverse()) {
      await this.run('DEL', list, plugin, this.pluginConfig(list, plugin, version, { prevResult: prev, a }), a);
    }
    deleteCache(this.opts.cacheDir, list.name, a.containerID, a.ifname);
  }

  async check(list: NetworkList, a: AttachmentSpec): Promise<void> {
    this.lastExecs = [];
    const version = this.version(list);
    if (!versionAtLeast(version, '0.4.0')) throw new CniError(ErrorCode.IncompatibleVersion, `network "${list.name}" is at version ${version}; CHECK needs 0.4.0 or later`);
    if (list.disableCheck) return;
    const prev = this.cachedResult(list, a, version, false);
    if (!prev) throw new CniError(ErrorCode.UnknownContainer, `no cached result for ${a.containerID}/${a.ifname} on network "${list.name}": was it attached?`);
    for (const plugin of list.plugins) {
      await this.run('CHECK', list, plugin, this.pluginConfig(list, plugin, version, { prevResult: prev, a }), a);
    }
  }

  /**
   * GC: DEL every cached attachment of this network that is not in the valid set (with the parameters
   * it was added with), then, at 1.1.0, GC to each plugin. Errors are collected, not fatal.
   */
  async gc(list: NetworkList, valid?: Attachment[]): Promise<{ deleted: Attachment[]; errors: Error[] }> {
    const deleted: Attachment[] = [];
    const errors: Error[] = [];
    if (list.disableGC) return { deleted, errors };
    const keep = new Set((valid ?? []).map((v) => `${v.containerID}\0${v.ifname}`));
    for (const entry of listCache(this.opts.cacheDir, list.name)) {
      if (keep.has(`${entry.containerId}\0${entry.ifName}`)) continue;
      const a: AttachmentSpec = { containerID: entry.containerId, ifname: entry.ifName, netns: entry.netns ?? '', args: entry.cniArgs, capabilityArgs: entry.capabilityArgs };
      try {
        const cachedList = entry.config ? parseNetworkList(Buffer.from(entry.config, 'base64')) : list;
        await this.del(cachedList, a);
        deleted.push({ containerID: entry.containerId, ifname: entry.ifName });
      } catch (e) { errors.push(e as Error); }
    }
    const version = this.version(list);
    if (versionAtLeast(version, '1.1.0')) {
      const validList = valid ?? [];
      for (const plugin of list.plugins) {
        try {
          await this.run('GC', list, plugin, this.pluginConfig(list, plugin, version, { gc: validList }));
        } catch (e) { errors.push(e as Error); }
      }
    }
    return { deleted, errors };
  }

  /** STATUS to each plugin (1.1.0 only); the first failure comes back with the plugin's own code (50/51). */
  async status(list: NetworkList): Promise<void> {
    const version = this.version(list);
    if (!versionAtLeast(version, '1.1.0')) return;
    for (const plugin of list.plugins) {
      await this.run('STATUS', list, plugin, this.pluginConfig(list, plugin, version, {}));
    }
  }

  /** VERSION of one plugin, with the dummy variables older skeletons insist on. */
  async versionInfo(type: string): Promise<VersionInfo> {
    const env = { ...(this.opts.env ?? process.env), CNI_COMMAND: 'VERSION', CNI_NETNS: 'dummy', CNI_IFNAME: 'dummy', CNI_PATH: this.opts.path.join(':') };
    const out = await execPlugin({ file: this.pluginFile(type), env, stdin: '{"cniVersion":"1.1.0"}', timeoutMs: this.opts.timeoutMs, netns: this.opts.pluginNetns });
    if (out.status !== 0) throw new CniError(ErrorCode.Internal, `${type} VERSION failed: ${out.stdout.trim() || out.stderr.trim()}`);
    const v = JSON.parse(out.stdout) as VersionInfo;
    if (!Array.isArray(v.supportedVersions)) {
      v.supportedVersions = v.cniVersion === '0.2.0' ? ['0.1.0', '0.2.0'] : [v.cniVersion];
    }
    return v;
  }
}
