import { execPlugin } from '../../lib/libcni/exec.js';
import { parseResult } from '../../lib/cni/result.js';
import { versionAtLeast } from '../../lib/cni/version.js';
import { Netlink } from '../../lib/netlink/handle.js';
import { verifyResultInKernel } from '../kernel.js';
import { CaseFailure, eventually, expect, Skip, type Case, type CaseContext } from './types.js';

type Obj = Record<string, unknown>;

/** Runs the interface plugin directly (no runtime in between) with a crafted environment and stdin. */
async function invokeRaw(ctx: CaseContext, env: Obj, stdin: string) {
  const base: NodeJS.ProcessEnv = { ...process.env, CNI_PATH: ctx.lab.runtime.opts.path.join(':') };
  for (const [k, v] of Object.entries(env)) {
    if (v === undefined) delete base[k]; else base[k] = String(v);
  }
  return execPlugin({ file: ctx.pluginFile, env: base, stdin, timeoutMs: 30_000, netns: ctx.lab.host });
}

function pluginConf(ctx: CaseContext, overrides: Obj = {}): Obj {
  return { ...ctx.plugin, name: ctx.lab.list.name, cniVersion: ctx.lab.runtime.version(ctx.lab.list), ...overrides };
}

async function expectErrorCode(ctx: CaseContext, env: Obj, stdin: string, code: number, what: string): Promise<void> {
  const out = await invokeRaw(ctx, env, stdin);
  expect(out.status !== 0, `${what}: the plugin exited 0; it must fail with code ${code}`);
  let err: Obj;
  try { err = JSON.parse(out.stdout) as Obj; } catch {
    throw new CaseFailure(`${what}: stdout is not a CNI error object: ${JSON.stringify(out.stdout.slice(0, 200))}`);
  }
  expect(typeof err.msg === 'string' && err.msg.length > 0, `${what}: the error has no "msg": ${out.stdout}`);
  expect(err.code === code, `${what}: error code ${String(err.code)} (${String(err.msg)}), expected ${code}`);
}

/** The checks every ADD result gets, on the raw JSON the plugin printed for `version`. */
function checkResultShape(raw: string, version: string, netns: string, ifname: string): string[] {
  const problems: string[] = [];
  let json: Obj;
  try { json = JSON.parse(raw) as Obj; } catch { return [`result is not JSON: ${raw.slice(0, 200)}`]; }
  if (json.cniVersion !== version) problems.push(`result cniVersion is ${JSON.stringify(json.cniVersion)}, config asked for ${version}`);
  try { parseResult(json, version); } catch (e) { problems.push((e as Error).message); }
  const ips = (json.ips ?? []) as Obj[];
  if (!ips.length) problems.push('result has no ips');
  for (const [i, ip] of ips.entries()) {
    const has = 'version' in ip;
    if (!versionAtLeast(version, '1.0.0') && !has) problems.push(`ips[${i}] lacks "version", required before 1.0.0`);
    if (versionAtLeast(version, '1.0.0') && has) problems.push(`ips[${i}] has "version", removed in 1.0.0`);
  }
  const ifaces = (json.interfaces ?? []) as Obj[];
  if (!ifaces.some((f) => f.name === ifname && f.sandbox === netns)) problems.push(`no interface ${ifname} with sandbox ${netns}`);
  return problems;
}

function tamperAddress(netns: string, ifname: string): string {
  return Netlink.within(netns, (nl) => {
    const link = nl.linkByName(ifname);
    if (!link) throw new CaseFailure(`${ifname} missing before tampering`);
    const addr = nl.addrs({ index: link.index }).find((a) => a.family === 4 || a.scope === 0);
    if (!addr) throw new CaseFailure(`${ifname} has no address to remove`);
    nl.addrDel(link.index, addr.cidr);
    return `${addr.cidr.ip.family === 4 ? 'IPv4' : 'IPv6'} address removed`;
  });
}

export const specCases: Case[] = [
  {
    id: 'version', title: 'VERSION answers with cniVersion and supportedVersions', kind: 'spec',
    async run(ctx) {
      const out = await invokeRaw(ctx, { CNI_COMMAND: 'VERSION' }, '{"cniVersion":"1.1.0"}');
      expect(out.status === 0, `VERSION exited ${out.status}: ${out.stdout}`);
      const v = JSON.parse(out.stdout) as Obj;
      expect(typeof v.cniVersion === 'string', 'VERSION reply lacks cniVersion');
      expect(Array.isArray(v.supportedVersions) && v.supportedVersions.length > 0, 'VERSION reply lacks supportedVersions');
      expect((v.supportedVersions as unknown[]).every((x) => typeof x === 'string' && /^\d+\.\d+\.\d+$/.test(x)), `supportedVersions must be semver strings: ${out.stdout}`);
      const want = ctx.lab.runtime.version(ctx.lab.list);
      expect((v.supportedVersions as string[]).includes(want), `the network's version ${want} is not in supportedVersions`);
    },
  },
  {
    id: 'add-matches-kernel', title: 'ADD result matches the kernel (address, routes, MAC)', kind: 'spec',
    async run(ctx) {
      const c = ctx.lab.newContainer();
      const result = await ctx.lab.attach(c);
      try {
        const problems = verifyResultInKernel(result, c.path, 'eth0');
        expect(!problems.length, problems.join('; '));
      } finally { await ctx.lab.detach(c); }
    },
  },
  {
    id: 'check', title: 'CHECK passes after ADD and fails after tampering', kind: 'spec',
    async run(ctx) {
      const version = ctx.lab.runtime.version(ctx.lab.list);
      const list = versionAtLeast(version, '0.4.0') ? ctx.lab.list
        : ctx.versions.includes('1.1.0') ? ctx.lab.withVersion('1.1.0') : null;
      if (!list) throw new Skip('neither the network nor the plugin has a version with CHECK (0.4.0+)');
      if (list.disableCheck) throw new Skip('the network sets disableCheck');
      const c = ctx.lab.newContainer();
      await ctx.lab.attach(c, list);
      try {
        await ctx.lab.runtime.check(list, ctx.lab.spec(c));
        const what = tamperAddress(c.path, 'eth0');
        let failed = false;
        try { await ctx.lab.runtime.check(list, ctx.lab.spec(c)); } catch { failed = true; }
        expect(failed, `CHECK still passed after tampering (${what})`);
      } finally { await ctx.lab.detach(c, list); }
    },
  },
  {
    id: 'del-twice', title: 'DEL twice succeeds', kind: 'spec',
    async run(ctx) {
      const before = await ctx.lab.reservations();
      const c = ctx.lab.newContainer();
      await ctx.lab.attach(c);
      await ctx.lab.detach(c);
      await ctx.lab.detach(c);
      const after = await ctx.lab.reservations();
      if (before && after) expect(after.length === before.length, `IPAM holds ${after.length} addresses after DEL, ${before.length} before ADD`);
    },
  },
  {
    id: 'del-netns-gone', title: 'DEL succeeds when the namespace is already gone, and releases the address', kind: 'spec',
    async run(ctx) {
      const before = await ctx.lab.reservations();
      const c = ctx.lab.newContainer();
      await ctx.lab.attach(c);
      ctx.lab.removeContainer(c);
      await ctx.lab.detach(c);
      const after = await ctx.lab.reservations();
      if (before && after) expect(after.length === before.length, `IPAM still holds ${after.length - before.length} address(es) after DEL without a namespace`);
    },
  },
  {
    id: 'del-empty-netns', title: 'DEL with an empty CNI_NETNS succeeds and releases the address', kind: 'spec',
    async run(ctx) {
      const before = await ctx.lab.reservations();
      const c = ctx.lab.newContainer();
      await ctx.lab.attach(c);
      await ctx.lab.runtime.del(ctx.lab.list, { ...ctx.lab.spec(c), netns: '' });
      const after = await ctx.lab.reservations();
      if (before && after) expect(after.length === before.length, `IPAM still holds ${after.length - before.length} address(es) after DEL with empty CNI_NETNS`);
      await ctx.lab.detach(c); // the interface itself goes with a proper DEL
    },
  },
  {
    id: 'del-never-added', title: 'DEL of a container that was never added succeeds', kind: 'spec',
    async run(ctx) {
      const c = ctx.lab.newContainer();
      await ctx.lab.detach(c);
    },
  },
  {
    id: 'add-twice', title: 'a second ADD for the same container and interface fails', kind: 'spec',
    async run(ctx) {
      const c = ctx.lab.newContainer();
      const first = await ctx.lab.attach(c);
      try {
        let failed = false;
        try { await ctx.lab.attach(c); } catch { failed = true; }
        expect(failed, 'the second ADD succeeded');
        // and the refused ADD must not have disturbed the first one's interface or address
        const problems = verifyResultInKernel(first, c.path, 'eth0');
        expect(!problems.length, `after the refused second ADD: ${problems.join('; ')}`);
      } finally { await ctx.lab.detach(c); }
    },
  },
  {
    id: 'error-invalid-json', title: 'undecodable config gives code 6', kind: 'spec',
    async run(ctx) {
      const c = ctx.lab.newContainer();
      await expectErrorCode(ctx, { CNI_COMMAND: 'ADD', CNI_CONTAINERID: c.id, CNI_NETNS: c.path, CNI_IFNAME: 'eth0' }, '{"cniVersion": "1.0.0", "name": ', 6, 'truncated JSON');
    },
  },
  {
    id: 'error-missing-field', title: 'a config without "name" gives code 7', kind: 'spec',
    async run(ctx) {
      const c = ctx.lab.newContainer();
      const conf = pluginConf(ctx);
      delete conf.name;
      await expectErrorCode(ctx, { CNI_COMMAND: 'ADD', CNI_CONTAINERID: c.id, CNI_NETNS: c.path, CNI_IFNAME: 'eth0' }, JSON.stringify(conf), 7, 'missing name');
    },
  },
  {
    id: 'error-bad-env', title: 'a missing CNI_CONTAINERID gives code 4', kind: 'spec',
    async run(ctx) {
      const c = ctx.lab.newContainer();
      await expectErrorCode(ctx, { CNI_COMMAND: 'ADD', CNI_CONTAINERID: undefined, CNI_NETNS: c.path, CNI_IFNAME: 'eth0' }, JSON.stringify(pluginConf(ctx)), 4, 'missing CNI_CONTAINERID');
    },
  },
  {
    id: 'error-unsupported-version', title: 'an unsupported cniVersion gives code 1', kind: 'spec',
    async run(ctx) {
      const c = ctx.lab.newContainer();
      await expectErrorCode(ctx, { CNI_COMMAND: 'ADD', CNI_CONTAINERID: c.id, CNI_NETNS: c.path, CNI_IFNAME: 'eth0' }, JSON.stringify(pluginConf(ctx, { cniVersion: '9.9.9' })), 1, 'cniVersion 9.9.9');
    },
  },
  {
    id: 'concurrent-adds', title: '20 concurrent ADDs get 20 distinct addresses; DEL releases them all', kind: 'spec',
    async run(ctx) {
      const before = await ctx.lab.reservations();
      const cs = Array.from({ length: 20 }, () => ctx.lab.newContainer());
      const settled = await Promise.allSettled(cs.map((c) => ctx.lab.attach(c)));
      try {
        const failures = settled.filter((s) => s.status === 'rejected').map((s) => ((s as PromiseRejectedResult).reason as Error).message);
        expect(!failures.length, `${failures.length} of 20 ADDs failed: ${failures[0]}`);
        const addrs = settled.map((s) => (s as PromiseFulfilledResult<{ ips?: { address: string }[] }>).value.ips?.map((i) => i.address).join(',') ?? '');
        expect(new Set(addrs).size === 20, `duplicate addresses handed out: ${addrs.join(' ')}`);
      } finally {
        await Promise.allSettled(cs.map((c) => ctx.lab.detach(c)));
      }
      const after = await ctx.lab.reservations();
      if (before && after) expect(after.length === before.length, `IPAM holds ${after.length - before.length} address(es) more after all DELs`);
    },
  },
];

/** One case per spec version the plugin and tether share: the result is well formed in that version. */
export function versionCases(versions: string[]): Case[] {
  return versions.map((v) => ({
    id: `add-result@${v}`, title: `ADD result well formed at ${v}`, kind: 'spec' as const,
    async run(ctx: CaseContext) {
      const list = ctx.lab.withVersion(v);
      const c = ctx.lab.newContainer();
      const result = await ctx.lab.attach(c, list);
      try {
        const raw = ctx.lab.runtime.lastExecs.at(-1)?.stdout ?? '';
        const problems = [...checkResultShape(raw, v, c.path, 'eth0'), ...verifyResultInKernel(result, c.path, 'eth0')];
        expect(!problems.length, problems.join('; '));
      } finally { await ctx.lab.detach(c, list); }
      const gone = await eventually(() => {
        return Netlink.within(c.path, (nl) => nl.linkByName('eth0') ? ['eth0 still in the container after DEL'] : []);
      });
      expect(!gone.length, gone.join('; '));
    },
  }));
}

