import { mkdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { CniError, ErrorCode } from '../../lib/cni/errors.js';
import type { Command } from '../../lib/cni/env.js';
import { delegate } from '../../lib/cni/invoke.js';
import type { Context, PluginSpec } from '../../lib/cni/skel.js';
import type { NetConf, Result } from '../../lib/cni/types.js';
import { readNodeState, type NodeState } from '../../tetherd/state.js';
import { bridgeConfig, parseVxlanConf, type VxlanConf } from './delegate.js';

type Obj = Record<string, unknown>;

function nodeState(c: VxlanConf): NodeState {
  const s = readNodeState(c.stateFile);
  if (!s) {
    throw new CniError(ErrorCode.TryAgainLater, `the node has no overlay subnet yet: tetherd has not published ${c.stateFile} (is tetherd running on this node?)`, c.stateFile);
  }
  return s;
}

/** Where the generated bridge config of one attachment is kept, so DEL and CHECK act on what ADD did. */
const savedPath = (c: VxlanConf, ctx: Context) => join(c.dataDir, c.name, `${ctx.args.containerID}-${ctx.args.ifname}.json`);

function save(path: string, conf: Obj): void {
  mkdirSync(join(path, '..'), { recursive: true, mode: 0o700 });
  writeFileSync(`${path}.tmp`, JSON.stringify(conf), { mode: 0o600 });
  renameSync(`${path}.tmp`, path);
}

function load(path: string): Obj | undefined {
  try { return JSON.parse(readFileSync(path, 'utf8')) as Obj; } catch { return undefined; }
}

/** Runs tether-bridge in this process on the generated config (with this call's prevResult, if any). */
function runBridge(command: Command, ctx: Context<VxlanConf>, conf: Obj): Promise<Result | undefined> {
  const raw = JSON.parse(ctx.raw.toString()) as Obj;
  // runtimeConfig too: the bridge publishes the ports (portMappings capability) in this same exec.
  const sub = { ...conf, cniVersion: raw.cniVersion, name: raw.name, ...(raw.prevResult ? { prevResult: raw.prevResult } : {}), ...(raw.runtimeConfig ? { runtimeConfig: raw.runtimeConfig } : {}) };
  return delegate(command, 'tether-bridge', { ...ctx, raw: Buffer.from(JSON.stringify(sub)) });
}

function generated(ctx: Context<VxlanConf>): Obj {
  return bridgeConfig(ctx.conf, JSON.parse(ctx.raw.toString()) as Obj, nodeState(ctx.conf));
}

async function add(ctx: Context<VxlanConf>): Promise<Result> {
  const path = savedPath(ctx.conf, ctx);
  const conf = generated(ctx);
  // A repeated ADD of a live attachment is refused by the bridge: the record of the first stays for its DEL.
  const hadRecord = load(path) !== undefined;
  if (!hadRecord) save(path, conf);
  try {
    const r = await runBridge('ADD', ctx, conf);
    if (!r) throw new CniError(ErrorCode.Internal, 'tether-bridge returned no result');
    if (hadRecord) save(path, conf); // the old attachment was gone: this one is what DEL must undo
    return r;
  } catch (e) {
    if (!hadRecord) rmSync(path, { force: true });
    throw e;
  }
}

async function del(ctx: Context<VxlanConf>): Promise<void> {
  const path = savedPath(ctx.conf, ctx);
  // What ADD generated; without it (never added, or the file lost), what the node state gives now.
  let conf = load(path);
  if (!conf) {
    const s = readNodeState(ctx.conf.stateFile);
    if (s) conf = bridgeConfig(ctx.conf, JSON.parse(ctx.raw.toString()) as Obj, s);
  }
  if (!conf) {
    // Nothing says which subnet the address came from: still remove the interface.
    await runBridge('DEL', ctx, { type: 'tether-bridge', bridge: 'cni0' });
    return;
  }
  await runBridge('DEL', ctx, conf);
  rmSync(path, { force: true });
}

async function check(ctx: Context<VxlanConf>): Promise<void> {
  const conf = load(savedPath(ctx.conf, ctx));
  if (!conf) throw new CniError(ErrorCode.CheckFailed, `no record of an ADD of ${ctx.args.containerID}/${ctx.args.ifname} on network ${ctx.conf.name}`);
  await runBridge('CHECK', ctx, conf);
}

export const vxlanPlugin: PluginSpec<VxlanConf> = {
  name: 'tether-vxlan',
  about: 'tether-vxlan: pods on the node subnet tetherd holds in the VXLAN overlay (tether-bridge with a generated config)',
  parseConfig: (conf: NetConf) => parseVxlanConf(conf),
  add,
  del,
  check,
  async status(ctx) {
    const s = readNodeState(ctx.conf.stateFile);
    if (!s) throw new CniError(ErrorCode.NotAvailable, `tetherd has not published ${ctx.conf.stateFile}: the node has no overlay subnet`, ctx.conf.stateFile);
    await runBridge('STATUS', ctx, bridgeConfig(ctx.conf, JSON.parse(ctx.raw.toString()) as Obj, s));
  },
  async gc(ctx) {
    const s = readNodeState(ctx.conf.stateFile);
    if (s) await runBridge('GC', ctx, bridgeConfig(ctx.conf, JSON.parse(ctx.raw.toString()) as Obj, s));
  },
};
