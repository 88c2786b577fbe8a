import { chmodSync, copyFileSync, existsSync, lstatSync, mkdirSync, readFileSync, readlinkSync, renameSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { BINARY, LINKS } from '../lib/programs.js';
import { nodeCrypto } from '../lib/builtin.js';
import { hostBitsZero, parseCIDR } from '../lib/ip/addr.js';
import { UsageError } from '../lib/argv.js';
import { scanConfDir } from '../lib/libcni/conf.js';
import { dockerUnit } from './docker-unit.js';

// `cnictl install` / `uninstall`: first a plan (a list of actions computed from what is on disk), then,
// unless --dry-run, its execution. Only files tether put there are ever replaced or removed: the binary
// and links are recognised by what they are, the conflist by the checksum the install manifest keeps.

export const DEFAULT_CONFLIST = '10-tether.conflist';
export const MANIFEST = '.tether-install.json';

export interface InstallOptions {
  binDir: string;
  confDir: string;
  /** The binary to install (default: the one running). */
  from: string;
  subnet: string;
  force: boolean;
  /** Also install the Docker driver's unit (tetherd-docker.service) into this systemd directory. */
  dockerUnitDir?: string;
}

export const DOCKER_UNIT = 'tetherd-docker.service';

export type Action =
  | { kind: 'copy'; from: string; to: string }
  | { kind: 'link'; path: string; target: string }
  | { kind: 'write'; path: string; content: string; mode: number }
  | { kind: 'remove'; path: string }
  | { kind: 'keep'; path: string; why: string };

interface Manifest { version: 1; binDir: string; conflist?: { path: string; sha256: string }; dockerUnit?: { path: string; sha256: string } }

const sha256 = (s: string | Buffer) => nodeCrypto().createHash('sha256').update(s).digest('hex');

/** The network an install writes when the conf dir has none of tether's: tether-bridge, tether-ipam, ipMasq. */
export function defaultConflist(subnet: string): string {
  return `${JSON.stringify({
    cniVersion: '1.1.0',
    name: 'tether',
    plugins: [{
      type: 'tether-bridge',
      bridge: 'tether0',
      isDefaultGateway: true,
      ipMasq: true,
      log: { file: '/var/log/tether/cni.log', level: 'info', maxSizeMB: 10, maxFiles: 3 },
      ipam: { type: 'tether-ipam', ranges: [[{ subnet }]] },
    }],
  }, null, 2)}\n`;
}

type Entry = { kind: 'missing' } | { kind: 'link'; target: string } | { kind: 'file' } | { kind: 'other' };

function entry(path: string): Entry {
  try {
    const st = lstatSync(path);
    if (st.isSymbolicLink()) return { kind: 'link', target: readlinkSync(path) };
    return st.isFile() ? { kind: 'file' } : { kind: 'other' };
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return { kind: 'missing' };
    throw e;
  }
}

function readManifest(binDir: string): Manifest | undefined {
  try { return JSON.parse(readFileSync(join(binDir, MANIFEST), 'utf8')) as Manifest; } catch { return undefined; }
}

export function planInstall(o: InstallOptions): Action[] {
  const actions: Action[] = [];
  const conflicts: string[] = [];
  if (!existsSync(o.from)) throw new UsageError(`${o.from}: no such binary to install (use --from)`);
  const subnet = parseCIDR(o.subnet);
  if (!subnet || !hostBitsZero(subnet)) throw new UsageError(`--subnet must be a network address such as 10.22.0.0/16, got ${JSON.stringify(o.subnet)}`);
  const bin = join(o.binDir, BINARY);
  if (resolve(o.from) === resolve(bin)) actions.push({ kind: 'keep', path: bin, why: 'is the binary running' });
  else if (entry(bin).kind === 'other') conflicts.push(`${bin} is not a regular file`);
  else actions.push({ kind: 'copy', from: o.from, to: bin });
  for (const name of LINKS) {
    const path = join(o.binDir, name);
    const e = entry(path);
    if (e.kind === 'link' && e.target === BINARY) actions.push({ kind: 'keep', path, why: `already links to ${BINARY}` });
    else if (e.kind === 'missing' || o.force) actions.push({ kind: 'link', path, target: BINARY });
    else conflicts.push(`${path} exists and is not tether's (${e.kind === 'link' ? `a link to ${e.target}` : 'a file'})`);
  }
  const unit = o.dockerUnitDir ? join(o.dockerUnitDir, DOCKER_UNIT) : undefined;
  const unitText = dockerUnit(resolve(o.binDir));
  if (unit) {
    const e = entry(unit);
    const ours = readManifest(o.binDir)?.dockerUnit;
    const current = e.kind === 'file' ? sha256(readFileSync(unit)) : undefined;
    if (e.kind !== 'missing' && e.kind !== 'file') conflicts.push(`${unit} is not a regular file`);
    else if (current && current !== ours?.sha256 && current !== sha256(unitText) && !o.force) conflicts.push(`${unit} exists and is not the one tether installed`);
  }
  if (conflicts.length) throw new UsageError(`refusing to replace files that are not tether's (--force replaces them):\n  ${conflicts.join('\n  ')}`);

  const confPath = join(o.confDir, DEFAULT_CONFLIST);
  const existing = scanConfDir(o.confDir).find((f) => f.list?.name === 'tether' || f.file === confPath);
  const manifest: Manifest = { version: 1, binDir: resolve(o.binDir) };
  if (existing) {
    actions.push({ kind: 'keep', path: existing.file, why: 'a configuration for network "tether" exists' });
    const old = readManifest(o.binDir)?.conflist;
    if (old && old.path === existing.file) manifest.conflist = old;
  } else {
    const content = defaultConflist(o.subnet);
    actions.push({ kind: 'write', path: confPath, content, mode: 0o644 });
    manifest.conflist = { path: confPath, sha256: sha256(content) };
  }
  if (unit) {
    actions.push({ kind: 'write', path: unit, content: unitText, mode: 0o644 });
    manifest.dockerUnit = { path: unit, sha256: sha256(unitText) };
  }
  actions.push({ kind: 'write', path: join(o.binDir, MANIFEST), content: `${JSON.stringify(manifest, null, 2)}\n`, mode: 0o644 });
  return actions;
}

export function planUninstall(o: { binDir: string; confDir: string }): Action[] {
  const actions: Action[] = [];
  const bin = join(o.binDir, BINARY);
  for (const name of LINKS) {
    const path = join(o.binDir, name);
    const e = entry(path);
    if (e.kind === 'link' && e.target === BINARY) actions.push({ kind: 'remove', path });
    else if (e.kind !== 'missing') actions.push({ kind: 'keep', path, why: 'not a link to tether' });
  }
  if (entry(bin).kind === 'file') actions.push({ kind: 'remove', path: bin });
  const manifest = readManifest(o.binDir);
  const conf = manifest?.conflist;
  if (conf && existsSync(conf.path)) {
    if (sha256(readFileSync(conf.path)) === conf.sha256) actions.push({ kind: 'remove', path: conf.path });
    else actions.push({ kind: 'keep', path: conf.path, why: 'changed since install' });
  } else if (!manifest) {
    const guess = join(o.confDir, DEFAULT_CONFLIST);
    if (existsSync(guess)) actions.push({ kind: 'keep', path: guess, why: 'no install manifest says tether wrote it' });
  }
  const unit = manifest?.dockerUnit;
  if (unit && existsSync(unit.path)) {
    actions.push(sha256(readFileSync(unit.path)) === unit.sha256 ? { kind: 'remove', path: unit.path } : { kind: 'keep', path: unit.path, why: 'changed since install' });
  }
  if (manifest) actions.push({ kind: 'remove', path: join(o.binDir, MANIFEST) });
  return actions;
}

/** Every write lands under a temporary name first and is renamed into place: never a half-written plugin. */
export function apply(actions: Action[]): void {
  for (const a of actions) {
    const tmp = (p: string) => `${p}.tether-tmp-${process.pid}`;
    switch (a.kind) {
      case 'copy': {
        mkdirSync(dirname(a.to), { recursive: true, mode: 0o755 });
        copyFileSync(a.from, tmp(a.to));
        chmodSync(tmp(a.to), 0o755);
        renameSync(tmp(a.to), a.to);
        break;
      }
      case 'link': {
        rmSync(tmp(a.path), { force: true });
        symlinkSync(a.target, tmp(a.path));
        renameSync(tmp(a.path), a.path);
        break;
      }
      case 'write': {
        mkdirSync(dirname(a.path), { recursive: true, mode: 0o755 });
        writeFileSync(tmp(a.path), a.content, { mode: a.mode });
        renameSync(tmp(a.path), a.path);
        break;
      }
      case 'remove': rmSync(a.path, { force: true }); break;
      case 'keep': break;
    }
  }
}

export function describe(a: Action): string {
  switch (a.kind) {
    case 'copy': return `copy    ${a.from} -> ${a.to}`;
    case 'link': return `link    ${a.path} -> ${a.target}`;
    case 'write': return `write   ${a.path} (${a.content.length} bytes)`;
    case 'remove': return `remove  ${a.path}`;
    case 'keep': return `keep    ${a.path}: ${a.why}`;
  }
}

/** For --json: the actions without file contents (a dry run shows the conflist in text mode instead). */
export function actionJSON(a: Action): Record<string, unknown> {
  return a.kind === 'write' ? { kind: a.kind, path: a.path, bytes: a.content.length } : { ...a };
}
