import test from 'ava';
import { runPlugin, type PluginIO, type PluginSpec } from '../../lib/cni/skel.js';
import { CniError } from '../../lib/cni/errors.js';
import type { Attachment, NetConf } from '../../lib/cni/types.js';

interface Seen { command?: string; valid?: Attachment[]; prev?: unknown }

function plugin(seen: Seen, failWith?: Error): PluginSpec<NetConf> {
  return {
    name: 'test-plugin',
    about: 'test plugin',
    add(ctx) {
      seen.command = 'ADD';
      seen.prev = ctx.prevResult;
      if (failWith) throw failWith;
      return { cniVersion: ctx.version, ips: [{ address: '10.0.0.2/24', gateway: '10.0.0.1' }], interfaces: [{ name: 'eth0', sandbox: ctx.args.netns }] };
    },
    del() { seen.command = 'DEL'; },
    check() { seen.command = 'CHECK'; },
    status() { seen.command = 'STATUS'; },
    gc(_ctx, valid) { seen.command = 'GC'; seen.valid = valid; },
  };
}

async function invoke(env: Record<string, string | undefined>, stdin: string, failWith?: Error) {
  const seen: Seen = {};
  let out = '';
  const io: PluginIO = { env: { CNI_NETNS_OVERRIDE: '1', ...env }, readStdin: () => Buffer.from(stdin), stdout: (s) => { out += s; } };
  const status = await runPlugin(plugin(seen, failWith), io);
  return { status, out, json: out ? JSON.parse(out) : undefined, seen };
}

const env = { CNI_COMMAND: 'ADD', CNI_CONTAINERID: 'c1', CNI_NETNS: '/proc/1/ns/net', CNI_IFNAME: 'eth0', CNI_PATH: '/x' };
const conf = (o: Record<string, unknown> = {}) => JSON.stringify({ cniVersion: '1.0.0', name: 'net1', type: 'test-plugin', ...o });

test('ADD prints exactly one result document in the config version', async (t) => {
  const r = await invoke(env, conf({ cniVersion: '0.4.0' }));
  t.is(r.status, 0);
  t.is(r.json.cniVersion, '0.4.0');
  t.is(r.json.ips[0].version, '4');
  t.is(r.seen.command, 'ADD');
});

test('VERSION answers the asked version when supported, else 1.1.0', async (t) => {
  const a = await invoke({ CNI_COMMAND: 'VERSION' }, '{"cniVersion":"0.4.0"}');
  t.deepEqual(a.json, { cniVersion: '0.4.0', supportedVersions: ['0.3.0', '0.3.1', '0.4.0', '1.0.0', '1.1.0'] });
  const b = await invoke({ CNI_COMMAND: 'VERSION' }, '');
  t.is(b.json.cniVersion, '1.1.0');
});

test('no CNI_COMMAND: exit 0, nothing on stdout', async (t) => {
  const r = await invoke({}, '');
  t.is(r.status, 0);
  t.is(r.out, '');
});

const errorCases: [string, Record<string, string | undefined>, string, number, RegExp][] = [
  ['undecodable JSON', env, '{"cniVersion":', 6, /cannot decode/],
  ['not an object', env, '[1]', 6, /JSON object/],
  ['missing cniVersion', env, JSON.stringify({ name: 'n', type: 't' }), 7, /cniVersion/],
  ['unsupported version', env, conf({ cniVersion: '0.2.0' }), 1, /config is "0.2.0"/],
  ['missing name', env, JSON.stringify({ cniVersion: '1.0.0', type: 't' }), 7, /"name" is required/],
  ['bad name', env, conf({ name: 'a/b' }), 7, /"name"/],
  ['missing type', env, JSON.stringify({ cniVersion: '1.0.0', name: 'n' }), 7, /"type" is required/],
  ['missing env', { ...env, CNI_CONTAINERID: undefined }, conf(), 4, /CNI_CONTAINERID/],
  ['CHECK before 0.4.0', { ...env, CNI_COMMAND: 'CHECK' }, conf({ cniVersion: '0.3.1' }), 1, /CHECK/],
  ['GC before 1.1.0', { CNI_COMMAND: 'GC', CNI_PATH: '/x' }, conf(), 1, /GC/],
  ['bad prevResult', env, conf({ prevResult: { ips: [{ address: 'nope' }] } }), 7, /prevResult.*ips\[0\]\.address/],
];
for (const [name, e, stdin, code, re] of errorCases) {
  test(`error: ${name} -> code ${code}`, async (t) => {
    const r = await invoke(e, stdin);
    t.is(r.status, 1);
    t.is(r.json.code, code);
    t.regex(r.json.msg, re);
    t.is(r.seen.command, undefined, 'the handler must not run');
  });
}

test('a plugin error keeps its code and details; an unexpected exception is 999 without a stack', async (t) => {
  const a = await invoke(env, conf(), new CniError(11, 'busy', 'try later'));
  t.deepEqual(a.json, { cniVersion: '1.0.0', code: 11, msg: 'busy', details: 'try later' });
  const b = await invoke({ ...env, TETHER_LOG_FILE: '/dev/null' }, conf(), new TypeError('boom'));
  t.is(b.json.code, 999);
  t.is(b.json.msg, 'boom');
  t.false(b.out.includes('at '), 'no stack trace on stdout');
});

test('GC accepts both attachment keys', async (t) => {
  const list = [{ containerID: 'a', ifname: 'eth0' }];
  for (const key of ['cni.dev/valid-attachments', 'cni.dev/attachments']) {
    const r = await invoke({ CNI_COMMAND: 'GC', CNI_PATH: '/x' }, conf({ cniVersion: '1.1.0', [key]: list }));
    t.is(r.status, 0);
    t.deepEqual(r.seen.valid, list);
  }
});

test('prevResult reaches the handler parsed', async (t) => {
  const r = await invoke(env, conf({ prevResult: { cniVersion: '1.0.0', ips: [{ address: '10.9.0.2/24' }] } }));
  t.deepEqual((r.seen.prev as any).ips, [{ address: '10.9.0.2/24' }]);
});

test('ADD into the plugin\'s own namespace is refused unless CNI_NETNS_OVERRIDE is set', async (t) => {
  const seen: Seen = {};
  let out = '';
  const status = await runPlugin(plugin(seen), { env: { ...env, CNI_NETNS: '/proc/self/ns/net' }, readStdin: () => Buffer.from(conf()), stdout: (s) => { out += s; } });
  t.is(status, 1);
  t.is(JSON.parse(out).code, 4);
  t.regex(JSON.parse(out).msg, /own network namespace/);
});
