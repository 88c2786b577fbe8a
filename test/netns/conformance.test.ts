import test from 'ava';
import { fileURLToPath } from 'node:url';
import { loadNetworkList, parseNetworkList } from '../../cnictl/conf.js';
import { runConformance } from '../../conformance/harness.js';
import { listNamedNetns } from '../../lib/netns/netns.js';
import { fakePlugins } from '../helpers/fake-plugin.js';

const networks = fileURLToPath(new URL('../../../conformance/networks/', import.meta.url));

for (const name of ['ref-bridge', 'ref-ptp']) {
  test(`the reference plugins pass every case: ${name}`, async (t) => {
    const report = await runConformance({ list: loadNetworkList(networks, name), path: ['/usr/lib/cni'] });
    const bad = report.cases.filter((c) => c.status !== 'pass').map((c) => `${c.id}: ${c.status} ${c.message ?? ''}`);
    t.deepEqual(bad, []);
    t.true(report.cases.length >= 20);
    t.true(report.cases.some((c) => c.id === 'add-result@0.3.0') && report.cases.some((c) => c.id === 'add-result@1.0.0'), 'every claimed version is exercised');
    t.deepEqual(report.leftovers, []);
  });
}

test('the harness catches a plugin that lies: its checks can fail', async (t) => {
  // The recording fake answers ADD with an interface it never creates, allows double ADD, and
  // crashes (no CNI error object) on bad input: exactly what the cases exist to catch.
  const fake = fakePlugins(['liar']);
  const list = parseNetworkList(Buffer.from(JSON.stringify({ cniVersion: '1.0.0', name: 'liar-net', plugins: [{ type: 'liar', debugLog: fake.log }] })));
  const report = await runConformance({ list, path: [fake.dir] });
  const status = Object.fromEntries(report.cases.map((c) => [c.id, c.status]));
  for (const id of ['add-result@1.0.0', 'add-matches-kernel', 'check', 'add-twice', 'error-invalid-json', 'error-missing-field', 'error-bad-env', 'error-unsupported-version', 'del-leaves-nothing']) {
    t.is(status[id], 'fail', id);
  }
  t.is(status.version, 'pass');
  t.is(status['reach-gateway'], 'skip', 'no gateway in the result: reported as skipped, never as passed');
  t.deepEqual(report.leftovers, []);
});

test('known failures are reported with their spec section, not hidden', async (t) => {
  const fake = fakePlugins(['liar2']);
  const list = parseNetworkList(Buffer.from(JSON.stringify({ cniVersion: '1.0.0', name: 'liar-net2', plugins: [{ type: 'liar2', debugLog: fake.log }] })));
  const report = await runConformance({ list, path: [fake.dir], only: ['add-twice'], knownFailures: { 'add-twice': 'SPEC.md "ADD": an existing interface name must be an error' } });
  t.is(report.cases.length, 1);
  t.is(report.cases[0].status, 'known-failure');
  t.regex(report.cases[0].specRef!, /SPEC\.md/);
  t.is(report.summary.knownFailures, 1);
  t.is(report.summary.passed, 0);
});

test.after.always('no harness namespace survives', (t) => {
  t.deepEqual(listNamedNetns().filter((n) => n.startsWith('tcf')), []);
});
