import test from 'ava';
import { parseCniArgs, formatCniArgs } from '../../lib/cni/args.js';
import { cniArg, readCmdArgs, readCommand } from '../../lib/cni/env.js';
import { CniError } from '../../lib/cni/errors.js';
import { ifnameProblem, containerIDProblem } from '../../lib/cni/validate.js';
import { compareVersions, pickVersion, requireSupported } from '../../lib/cni/version.js';

const base = { CNI_COMMAND: 'ADD', CNI_CONTAINERID: 'abc', CNI_NETNS: '/run/netns/x', CNI_IFNAME: 'eth0', CNI_PATH: '/opt/cni/bin' };

test('CNI_ARGS: Kubernetes-style keys are kept, unknown keys are not errors, values may contain "="', (t) => {
  const args = parseCniArgs('IgnoreUnknown=1;K8S_POD_NAMESPACE=default;K8S_POD_NAME=web-0;TOKEN=a=b;');
  t.deepEqual(args, [['IgnoreUnknown', '1'], ['K8S_POD_NAMESPACE', 'default'], ['K8S_POD_NAME', 'web-0'], ['TOKEN', 'a=b']]);
  t.is(formatCniArgs(args), 'IgnoreUnknown=1;K8S_POD_NAMESPACE=default;K8S_POD_NAME=web-0;TOKEN=a=b');
  t.deepEqual(parseCniArgs(''), []);
  t.deepEqual(parseCniArgs(undefined), []);
});

test('CNI_ARGS: a pair without "=" is code 4', (t) => {
  const e = t.throws(() => parseCniArgs('A=1;broken'), { instanceOf: CniError });
  t.is(e!.code, 4);
  t.regex(e!.message, /broken/);
});

test('env: each command requires its variables, named in the error', (t) => {
  const e = t.throws(() => readCmdArgs('ADD', { ...base, CNI_NETNS: '', CNI_IFNAME: undefined }), { instanceOf: CniError });
  t.is(e!.code, 4);
  t.regex(e!.message, /CNI_NETNS, CNI_IFNAME/);
  t.notThrows(() => readCmdArgs('DEL', { ...base, CNI_NETNS: '' }));
  t.is(t.throws(() => readCmdArgs('GC', { CNI_COMMAND: 'GC' }), { instanceOf: CniError })!.code, 4);
  t.notThrows(() => readCmdArgs('STATUS', { CNI_COMMAND: 'STATUS' }));
});

test('env: bad container IDs and interface names are refused with code 4 naming the variable', (t) => {
  for (const [k, v] of [['CNI_CONTAINERID', '../etc'], ['CNI_CONTAINERID', '-x'], ['CNI_IFNAME', 'a/b'], ['CNI_IFNAME', 'x'.repeat(16)], ['CNI_IFNAME', '..'], ['CNI_NETNS', 'relative/path']]) {
    const e = t.throws(() => readCmdArgs('ADD', { ...base, [k]: v }), { instanceOf: CniError });
    t.is(e!.code, 4);
    t.is(e!.details, k);
  }
});

test('env: unknown CNI_COMMAND is code 4; none means "about"', (t) => {
  t.is(t.throws(() => readCommand({ CNI_COMMAND: 'FROB' }), { instanceOf: CniError })!.code, 4);
  t.is(readCommand({}), undefined);
  t.is(readCommand({ CNI_COMMAND: 'GC' }), 'GC');
});

test('env: CNI_PATH splits, CNI_ARGS lookups take the last value', (t) => {
  const a = readCmdArgs('ADD', { ...base, CNI_PATH: '/a::/b', CNI_ARGS: 'IP=1;IP=2' });
  t.deepEqual(a.path, ['/a', '/b']);
  t.is(cniArg(a, 'IP'), '2');
  t.is(cniArg(a, 'MAC'), undefined);
});

test('validation rules match the reference skeleton', (t) => {
  t.is(containerIDProblem('abc-1.2_3'), null);
  t.truthy(containerIDProblem(''));
  t.truthy(containerIDProblem('a b'));
  t.is(ifnameProblem('eth0'), null);
  t.is(ifnameProblem('x'.repeat(15)), null);
  t.truthy(ifnameProblem('e:0'));
  t.truthy(ifnameProblem('e 0'));
});

test('versions: exact support required, the highest common one picked', (t) => {
  t.is(requireSupported('1.0.0', ['0.4.0', '1.0.0']), '1.0.0');
  const e = t.throws(() => requireSupported('1.2.0', ['1.0.0']), { instanceOf: CniError });
  t.is(e!.code, 1);
  t.regex(e!.message, /config is "1.2.0"/);
  t.is(pickVersion('0.4.0', ['1.0.0', '1.1.0', '2.0.0'], ['0.4.0', '1.0.0', '1.1.0']), '1.1.0');
  t.is(pickVersion('9.9.9', undefined, ['1.0.0']), null);
  t.true(compareVersions('0.10.0', '0.9.0') > 0);
});
