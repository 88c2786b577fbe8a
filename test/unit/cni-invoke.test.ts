import test from 'ava';
import { delegate, findPlugin, registerInProcess } from '../../lib/cni/invoke.js';
import { buildContext, type Context, type PluginSpec } from '../../lib/cni/skel.js';
import { CniError } from '../../lib/cni/errors.js';
import type { NetConf } from '../../lib/cni/types.js';
import { fakePlugins } from '../helpers/fake-plugin.js';

const spec: PluginSpec = { name: 'main', about: 'main', add: () => ({ cniVersion: '1.0.0' }), del() {}, check() {} };

function context(path: string, conf: Record<string, unknown>, command: 'ADD' | 'DEL' = 'ADD'): Context {
  const env = { CNI_COMMAND: command, CNI_CONTAINERID: 'c9', CNI_NETNS: '/run/netns/x', CNI_IFNAME: 'eth0', CNI_PATH: path, CNI_ARGS: 'K8S_POD_NAME=a', EXTRA_VAR: 'kept' };
  return buildContext(spec, command, env, Buffer.from(JSON.stringify({ cniVersion: '1.0.0', name: 'n1', type: 'main', ...conf })));
}

test('exec delegation: same environment (CNI_COMMAND replaced), same full config, result parsed', async (t) => {
  const fake = fakePlugins(['ipam-x']);
  const ctx = context(fake.dir, { ipam: { type: 'ipam-x' }, debugLog: fake.log, result: { cniVersion: '1.0.0', ips: [{ address: '10.5.0.2/24', gateway: '10.5.0.1' }] } });
  const r = await delegate('ADD', 'ipam-x', ctx);
  t.deepEqual(r!.ips, [{ address: '10.5.0.2/24', gateway: '10.5.0.1' }]);
  const [call] = fake.calls();
  t.is(call.command, 'ADD');
  t.is(call.env.CNI_CONTAINERID, 'c9');
  t.is(call.env.CNI_ARGS, 'K8S_POD_NAME=a');
  t.is(call.conf.type, 'main', 'the whole config, not just the ipam section');
  t.deepEqual(call.conf.ipam, { type: 'ipam-x' });
  await delegate('DEL', 'ipam-x', ctx);
  t.is(fake.calls()[1].command, 'DEL');
});

test('exec delegation: the delegate\'s error keeps its code and details', async (t) => {
  const fake = fakePlugins(['ipam-y']);
  const ctx = context(fake.dir, { debugLog: fake.log, failOn: { ADD: { code: 11, msg: 'store busy', details: 'etcd' } } });
  const e = await t.throwsAsync(delegate('ADD', 'ipam-y', ctx), { instanceOf: CniError });
  t.is(e!.code, 11);
  t.is(e!.details, 'etcd');
  t.regex(e!.message, /ipam-y: store busy/);
});

test('a delegate missing from CNI_PATH is code 7 naming the path', async (t) => {
  const ctx = context('/nonexistent-a:/nonexistent-b', {});
  const e = await t.throwsAsync(delegate('ADD', 'nosuch-ipam', ctx), { instanceOf: CniError });
  t.is(e!.code, 7);
  t.regex(e!.message, /"nosuch-ipam" not found in CNI_PATH \/nonexistent-a:\/nonexistent-b/);
  t.is(findPlugin('../etc/passwd', ['/']), null, 'a type with a path separator is never looked up');
});

test('in-process delegation: a registered plugin gets the same config and parameters without an exec', async (t) => {
  const seen: { command?: string; containerID?: string; conf?: NetConf; env?: string } = {};
  registerInProcess('inproc-ipam', {
    name: 'inproc-ipam', about: 'x',
    add(c) { Object.assign(seen, { command: c.args.command, containerID: c.args.containerID, conf: c.conf, env: c.env.EXTRA_VAR }); return { cniVersion: c.version, ips: [{ address: '10.6.0.2/24' }] }; },
    del(c) { seen.command = c.args.command; },
    check() {},
  });
  const ctx = context('/nonexistent', { ipam: { type: 'inproc-ipam' } });
  const r = await delegate('ADD', 'inproc-ipam', ctx);
  t.deepEqual(r!.ips, [{ address: '10.6.0.2/24' }]);
  t.is(seen.command, 'ADD');
  t.is(seen.containerID, 'c9');
  t.is(seen.conf!.type, 'main');
  t.is(seen.env, 'kept');
  t.is(await delegate('DEL', 'inproc-ipam', ctx), undefined);
  t.is(seen.command, 'DEL');
});
