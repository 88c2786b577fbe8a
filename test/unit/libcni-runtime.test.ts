import test from 'ava';
import { existsSync, mkdtempSync, readFileSync, writeFileSync, mkdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseNetworkList } from '../../lib/libcni/conf.js';
import { CniRuntime, PluginFailure } from '../../lib/libcni/runtime.js';
import { cacheFile, listCache } from '../../lib/libcni/cache.js';
import { fakePlugins } from '../helpers/fake-plugin.js';

function setup(plugins: Record<string, unknown>[], extra: Record<string, unknown> = {}, timeoutMs = 10_000) {
  const fake = fakePlugins(['p1', 'p2', 'p3']);
  const list = parseNetworkList(Buffer.from(JSON.stringify({ cniVersion: '1.1.0', name: 'chain', ...extra, plugins: plugins.map((p) => ({ debugLog: fake.log, ...p })) })));
  const cacheDir = mkdtempSync(join(tmpdir(), 'tether-cache-'));
  const rt = new CniRuntime({ path: [fake.dir], cacheDir, timeoutMs });
  const a = { containerID: 'ctr1', netns: '/run/netns/nowhere', ifname: 'eth0', args: [['K8S_POD_NAME', 'web'] as [string, string]], capabilityArgs: { portMappings: [{ hostPort: 80 }], mac: '02:00:00:00:00:09' } };
  return { fake, list, rt, a, cacheDir };
}

test('ADD runs the chain in order, passing prevResult and per-plugin runtimeConfig', async (t) => {
  const { fake, list, rt, a } = setup([
    { type: 'p1', result: { cniVersion: '1.1.0', ips: [{ address: '10.0.0.2/24', gateway: '10.0.0.1' }] } },
    { type: 'p2', capabilities: { portMappings: true } },
    { type: 'p3', capabilities: { mac: false } },
  ]);
  const result = await rt.add(list, a);
  const calls = fake.calls();
  t.deepEqual(calls.map((c) => `${c.command} ${c.type}`), ['ADD p1', 'ADD p2', 'ADD p3']);
  t.is(calls[0].conf.prevResult, undefined);
  t.deepEqual(calls[1].conf.prevResult.ips, [{ address: '10.0.0.2/24', gateway: '10.0.0.1' }]);
  t.deepEqual(calls[1].conf.runtimeConfig, { portMappings: [{ hostPort: 80 }] });
  t.is(calls[2].conf.runtimeConfig, undefined, 'capability set to false gets nothing');
  t.is(calls[0].conf.name, 'chain');
  t.is(calls[0].conf.cniVersion, '1.1.0');
  t.is(calls[0].env.CNI_ARGS, 'K8S_POD_NAME=web');
  t.is(calls[0].env.CNI_PATH, rt.opts.path.join(':'));
  t.deepEqual(result.interfaces?.map((i) => i.name), ['p2-if', 'p3-if']);
});

test('the cache is libcni\'s cniCacheV1 record: base64 list bytes, args, capability args, final result', async (t) => {
  const { list, rt, a, cacheDir } = setup([{ type: 'p1' }]);
  await rt.add(list, a);
  const rec = JSON.parse(readFileSync(cacheFile(cacheDir, 'chain', 'ctr1', 'eth0'), 'utf8'));
  t.is(rec.kind, 'cniCacheV1');
  t.is(rec.containerId, 'ctr1');
  t.is(rec.ifName, 'eth0');
  t.is(rec.networkName, 'chain');
  t.is(rec.netns, '/run/netns/nowhere');
  t.deepEqual(Buffer.from(rec.config, 'base64'), list.bytes);
  t.deepEqual(rec.cniArgs, [['K8S_POD_NAME', 'web']]);
  t.deepEqual(rec.capabilityArgs, a.capabilityArgs);
  t.is(rec.result.interfaces[0].name, 'p1-if');
  t.is(listCache(cacheDir, 'chain').length, 1);
});

test('a failing plugin stops ADD with its own code, message and details; no cache is written', async (t) => {
  const { fake, list, rt, a, cacheDir } = setup([{ type: 'p1' }, { type: 'p2', failOn: { ADD: { code: 7, msg: 'bad bridge', details: 'bridge' } } }, { type: 'p3' }]);
  const e = await t.throwsAsync(rt.add(list, a), { instanceOf: PluginFailure });
  t.is(e!.code, 7);
  t.is(e!.details, 'bridge');
  t.regex(e!.message, /plugin type="p2" name="chain" failed \(add\): bad bridge/);
  t.deepEqual(fake.calls().map((c) => c.type), ['p1', 'p2']);
  t.false(existsSync(cacheFile(cacheDir, 'chain', 'ctr1', 'eth0')));
});

test('DEL runs in reverse with the cached final result, then drops the cache', async (t) => {
  const { fake, list, rt, a, cacheDir } = setup([{ type: 'p1' }, { type: 'p2' }]);
  await rt.add(list, a);
  await rt.del(list, a);
  const dels = fake.calls().filter((c) => c.command === 'DEL');
  t.deepEqual(dels.map((c) => c.type), ['p2', 'p1']);
  for (const d of dels) t.deepEqual(d.conf.prevResult.interfaces.map((i: any) => i.name), ['p1-if', 'p2-if']);
  t.false(existsSync(cacheFile(cacheDir, 'chain', 'ctr1', 'eth0')));
  await rt.del(list, a); // again: no cache, no prevResult, still fine
  t.is(fake.calls().at(-1)!.conf.prevResult, undefined);
});

test('a failed DEL keeps the cache so it can be retried', async (t) => {
  const { list, rt, a, cacheDir } = setup([{ type: 'p1', failOn: { DEL: { code: 11, msg: 'busy' } } }]);
  await rt.add(list, a);
  await t.throwsAsync(rt.del(list, a), { instanceOf: PluginFailure, message: /failed \(delete\): busy/ });
  t.true(existsSync(cacheFile(cacheDir, 'chain', 'ctr1', 'eth0')));
});

test('an unreadable cache record does not block DEL (it is dropped)', async (t) => {
  const { fake, list, rt, a, cacheDir } = setup([{ type: 'p1' }]);
  mkdirSync(join(cacheDir, 'results'), { recursive: true });
  writeFileSync(cacheFile(cacheDir, 'chain', 'ctr1', 'eth0'), '');
  await rt.del(list, a);
  t.is(fake.calls()[0].conf.prevResult, undefined);
  t.false(existsSync(cacheFile(cacheDir, 'chain', 'ctr1', 'eth0')));
});

test('CHECK sends the cached result in order; disableCheck makes it a no-op; no cache is an error', async (t) => {
  const { fake, list, rt, a } = setup([{ type: 'p1' }, { type: 'p2' }]);
  await t.throwsAsync(rt.check(list, a), { message: /no cached result/ });
  await rt.add(list, a);
  await rt.check(list, a);
  t.deepEqual(fake.calls().filter((c) => c.command === 'CHECK').map((c) => c.type), ['p1', 'p2']);
  const off = setup([{ type: 'p1' }], { disableCheck: true });
  await off.rt.add(off.list, off.a);
  await off.rt.check(off.list, off.a);
  t.false(off.fake.calls().some((c) => c.command === 'CHECK'));
});

test('GC deletes stale cached attachments with their own parameters, then sends GC with both keys', async (t) => {
  const { fake, list, rt, a } = setup([{ type: 'p1' }]);
  await rt.add(list, a);
  await rt.add(list, { ...a, containerID: 'ctr2', netns: '/run/netns/other' });
  const { deleted, errors } = await rt.gc(list, [{ containerID: 'ctr2', ifname: 'eth0' }]);
  t.deepEqual(errors, []);
  t.deepEqual(deleted, [{ containerID: 'ctr1', ifname: 'eth0' }]);
  const del = fake.calls().find((c) => c.command === 'DEL')!;
  t.is(del.env.CNI_CONTAINERID, 'ctr1');
  t.is(del.env.CNI_NETNS, '/run/netns/nowhere');
  t.is(del.env.CNI_ARGS, 'K8S_POD_NAME=web');
  const gc = fake.calls().find((c) => c.command === 'GC')!;
  t.deepEqual(gc.conf['cni.dev/valid-attachments'], [{ containerID: 'ctr2', ifname: 'eth0' }]);
  t.deepEqual(gc.conf['cni.dev/attachments'], [{ containerID: 'ctr2', ifname: 'eth0' }]);
  t.is(gc.env.CNI_CONTAINERID, '');
});

test('disableGC: GC does nothing at all', async (t) => {
  const { fake, list, rt, a } = setup([{ type: 'p1' }], { disableGC: true });
  await rt.add(list, a);
  const r = await rt.gc(list, []);
  t.deepEqual(r.deleted, []);
  t.is(fake.calls().length, 1);
});

test('STATUS reaches every plugin at 1.1.0 and returns the plugin\'s own code; nothing below 1.1.0', async (t) => {
  const { list, rt } = setup([{ type: 'p1' }, { type: 'p2', failOn: { STATUS: { code: 50, msg: 'etcd down' } } }]);
  const e = await t.throwsAsync(rt.status(list), { instanceOf: PluginFailure });
  t.is(e!.code, 50);
  const old = setup([{ type: 'p1', failOn: { STATUS: { code: 50, msg: 'x' } } }], { cniVersion: '1.0.0' });
  await t.notThrowsAsync(old.rt.status(old.list));
  t.is(old.fake.calls().length, 0);
});

test('a plugin that hangs is killed at the timeout and reported as try-again (11)', async (t) => {
  const { list, rt, a } = setup([{ type: 'p1', sleepMs: 5000 }], {}, 300);
  const started = Date.now();
  const e = await t.throwsAsync(rt.add(list, a), { instanceOf: PluginFailure });
  t.is(e!.code, 11);
  t.regex(e!.message, /timed out after 300 ms/);
  t.true(Date.now() - started < 3000);
});

test('version selection: highest of cniVersion and cniVersions that cnictl implements', (t) => {
  const { rt } = setup([{ type: 'p1' }]);
  t.is(rt.version(parseNetworkList(Buffer.from(JSON.stringify({ name: 'n', cniVersion: '0.4.0', cniVersions: ['1.0.0', '1.1.0', '1.2.0'], plugins: [{ type: 'x' }] })))), '1.1.0');
  t.throws(() => rt.version(parseNetworkList(Buffer.from(JSON.stringify({ name: 'n', cniVersion: '0.2.0', plugins: [{ type: 'x' }] })))), { message: /asks for CNI version 0.2.0/ });
});

test('a missing plugin binary is a clear error naming the search path', async (t) => {
  const { rt, a } = setup([{ type: 'p1' }]);
  const list = parseNetworkList(Buffer.from(JSON.stringify({ cniVersion: '1.0.0', name: 'n', plugins: [{ type: 'nosuch' }] })));
  await t.throwsAsync(rt.add(list, a), { message: /plugin "nosuch" not found in/ });
});
