import { readdirSync, readFileSync, statSync } from 'node:fs';
import { extname, join } from 'node:path';
import { networkNameProblem } from '../cni/validate.js';

/** A network configuration list as a runtime loads it (libcni's NetworkConfigList). */
export interface NetworkList {
  name: string;
  cniVersion: string;
  cniVersions?: string[];
  disableCheck: boolean;
  disableGC: boolean;
  loadOnlyInlinedPlugins: boolean;
  plugins: Record<string, unknown>[];
  /** The list's JSON bytes: cached with each attachment so DEL replays exactly what ADD ran. */
  bytes: Buffer;
  file?: string;
}

export class ConfigError extends Error {
  readonly file?: string;
  constructor(msg: string, file?: string) {
    super(file ? `${file}: ${msg}` : msg);
    this.name = 'ConfigError';
    this.file = file;
  }
}

type Obj = Record<string, unknown>;
const isObj = (v: unknown): v is Obj => typeof v === 'object' && v !== null && !Array.isArray(v);

/** libcni accepts a JSON bool or the strings "true"/"false" in any case. */
function flag(o: Obj, key: string, file?: string): boolean {
  const v = o[key];
  if (v === undefined || v === null) return false;
  if (typeof v === 'boolean') return v;
  if (typeof v === 'string' && /^(true|false)$/i.test(v)) return v.toLowerCase() === 'true';
  throw new ConfigError(`"${key}" must be true or false, got ${JSON.stringify(v)}`, file);
}

function decode(bytes: Buffer, file?: string): Obj {
  let v: unknown;
  try { v = JSON.parse(bytes.toString('utf8')); } catch (e) {
    throw new ConfigError(`not valid JSON: ${(e as Error).message}`, file);
  }
  if (!isObj(v)) throw new ConfigError('must be a JSON object', file);
  return v;
}

function checkPlugin(p: unknown, i: number, file?: string): Obj {
  if (!isObj(p)) throw new ConfigError(`plugins[${i}] must be an object`, file);
  if (typeof p.type !== 'string' || !p.type) throw new ConfigError(`plugins[${i}] has no "type"`, file);
  if (p.type.includes('/') || p.type.includes('\\')) throw new ConfigError(`plugins[${i}].type must be a plain name, got ${JSON.stringify(p.type)}`, file);
  return p;
}

export function parseNetworkList(bytes: Buffer, file?: string): NetworkList {
  const o = decode(bytes, file);
  if (typeof o.name !== 'string') throw new ConfigError('"name" is required and must be a string', file);
  const problem = networkNameProblem(o.name);
  if (problem) throw new ConfigError(`"name" ${problem}`, file);
  if (o.cniVersion !== undefined && typeof o.cniVersion !== 'string') throw new ConfigError('"cniVersion" must be a string', file);
  if (o.cniVersions !== undefined && (!Array.isArray(o.cniVersions) || o.cniVersions.some((v) => typeof v !== 'string'))) {
    throw new ConfigError('"cniVersions" must be a list of strings', file);
  }
  const loadOnlyInlinedPlugins = flag(o, 'loadOnlyInlinedPlugins', file);
  if (o.plugins === undefined && loadOnlyInlinedPlugins) throw new ConfigError('"loadOnlyInlinedPlugins" is set but there is no "plugins" list', file);
  if (o.plugins !== undefined && (!Array.isArray(o.plugins) || o.plugins.length === 0)) {
    throw new ConfigError('"plugins" must be a non-empty list', file);
  }
  return {
    name: o.name,
    cniVersion: (o.cniVersion as string | undefined) ?? '',
    cniVersions: o.cniVersions as string[] | undefined,
    disableCheck: flag(o, 'disableCheck', file),
    disableGC: flag(o, 'disableGC', file),
    loadOnlyInlinedPlugins,
    plugins: ((o.plugins as unknown[]) ?? []).map((p, i) => checkPlugin(p, i, file)),
    bytes,
    file,
  };
}

/** A single-plugin .conf/.json, up-converted to a one-plugin list as libcni does. */
export function parseSingleConf(bytes: Buffer, file?: string): NetworkList {
  const o = decode(bytes, file);
  const plugin = checkPlugin(o, 0, file);
  const listBytes = Buffer.from(JSON.stringify({ cniVersion: o.cniVersion, name: o.name, plugins: [o] }));
  const list = parseNetworkList(listBytes, file);
  list.plugins = [plugin];
  return list;
}

/** Sibling plugin configs in <dir>/<name>/*.conf, appended unless loadOnlyInlinedPlugins. */
function withSiblingPlugins(list: NetworkList, dir: string): NetworkList {
  if (list.loadOnlyInlinedPlugins) return list;
  const sub = join(dir, list.name);
  let files: string[];
  try { files = readdirSync(sub).filter((f) => f.endsWith('.conf')).sort(); } catch { return list; }
  if (!files.length) return list;
  const extra = files.map((f, i) => checkPlugin(decode(readFileSync(join(sub, f)), join(sub, f)), list.plugins.length + i, join(sub, f)));
  const merged = { ...decode(list.bytes, list.file), plugins: [...list.plugins, ...extra] };
  return { ...list, plugins: merged.plugins as Obj[], bytes: Buffer.from(JSON.stringify(merged)) };
}

export interface ConfFile {
  file: string;
  list?: NetworkList;
  error?: string;
}

/** Every .conflist, .conf and .json in dir, sorted by file name (the order runtimes use). */
export function scanConfDir(dir: string): ConfFile[] {
  let names: string[];
  try { names = readdirSync(dir).sort(); } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw e;
  }
  const out: ConfFile[] = [];
  for (const n of names) {
    const ext = extname(n);
    if (ext !== '.conflist' && ext !== '.conf' && ext !== '.json') continue;
    const file = join(dir, n);
    try {
      if (!statSync(file).isFile()) continue;
      const bytes = readFileSync(file);
      const list = ext === '.conflist' ? parseNetworkList(bytes, file) : parseSingleConf(bytes, file);
      out.push({ file, list: withSiblingPlugins(list, dir) });
    } catch (e) {
      out.push({ file, error: (e as Error).message });
    }
  }
  return out;
}

/** libcni's lookup: the first .conflist (by path) with that name, then .conf/.json. */
export function loadNetworkList(dir: string, name: string): NetworkList {
  const files = scanConfDir(dir);
  const lists = files.filter((f) => f.list?.name === name);
  const found = lists.find((f) => f.file.endsWith('.conflist')) ?? lists[0];
  if (found?.list) return found.list;
  const broken = files.filter((f) => f.error).map((f) => f.error).join('; ');
  const known = files.filter((f) => f.list).map((f) => f.list!.name);
  throw new ConfigError(`no network named "${name}" in ${dir}${known.length ? ` (found: ${known.join(', ')})` : ' (no valid configurations there)'}${broken ? `; unreadable: ${broken}` : ''}`);
}
