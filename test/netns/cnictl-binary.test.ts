import test from 'ava';
import { existsSync, mkdtempSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { runIn } from '../../conformance/spawn.js';
import { Netlink } from '../../lib/netlink/handle.js';
import { Namespaces } from '../helpers/netns.js';

// The shipped binary, driven as an operator would, but from inside a throwaway host namespace so the
// bridge and routes it makes never touch this machine's own.
const cnictl = fileURLToPath(new URL('../../../dist/bin/cnictl', import.meta.url));
const ns = new Namespaces();
test.after.always(() => ns.cleanup());

const conf = mkdtempSync(join(tmpdir(), 'tether-cnictl-conf-'));
const cache = mkdtempSync(join(tmpdir(), 'tether-cnictl-cache-'));
const data = mkdtempSync(join(tmpdir(), 'tether-cnictl-ipam-'));
writeFileSync(join(conf, '10-demo.conflist'), JSON.stringify({
  cniVersion: '1.0.0', name: 'demo',
  plugins: [{ type: 'bridge', bridge: 'democni0', isGateway: true, ipam: { type: 'host-local', dataDir: data, ranges: [[{ subnet: '10.91.0.0/24' }]] } }],
}));
writeFileSync(join(conf, '30-tnet.conflist'), JSON.stringify({
  cniVersion: '1.1.0', name: 'tnet',
  plugins: [{ type: 'tether-bridge', bridge: 'tnetbr0', isGateway: true, ipam: { type: 'tether-ipam', dataDir: data, ranges: [[{ subnet: '10.94.0.0/24' }]] } }],
}));
writeFileSync(join(conf, '20-broken.conflist'), JSON.stringify({
  cniVersion: '1.0.0', name: 'broken',
  plugins: [{ type: 'bridge', bridge: 'democni1', ipam: { type: 'host-local', ranges: [[{ subnet: 'not-a-subnet' }]] } }],
}));

const host = ns.add('host');
const run = (...args: string[]) => runIn(host, cnictl, ['--conf-dir', conf, '--cni-path', '/usr/lib/cni', '--cache-dir', cache, ...args], 30_000);

test.serial('attach, check, list, detach a namespace through the compiled binary', async (t) => {
  t.true(existsSync(cnictl), 'npm install builds dist/bin/cnictl');
  const ctr = ns.add('ctr');
  const attach = await run('attach', 'demo', ctr, '--json', '--container-id', 'ctr-one');
  t.is(attach.status, 0, attach.stderr);
  const result = JSON.parse(attach.stdout);
  t.is(result.cniVersion, '1.0.0');
  t.regex(result.ips[0].address, /^10\.91\.0\.\d+\/24$/);
  Netlink.within(ctr, (nl) => { t.truthy(nl.linkByName('eth0'), 'eth0 exists in the container'); });

  const record = JSON.parse(readFileSync(join(cache, 'results', 'demo-ctr-one-eth0'), 'utf8'));
  t.is(record.kind, 'cniCacheV1');
  t.is(record.netns, ctr);

  const check = await run('check', 'demo', ctr, '--container-id', 'ctr-one');
  t.is(check.status, 0, check.stderr);
  t.regex(check.stdout, /ok/);

  const list = await run('list', '--json');
  t.is(list.status, 0);
  t.deepEqual(JSON.parse(list.stdout).attachments.map((a: any) => [a.network, a.containerID, a.ifname]), [['demo', 'ctr-one', 'eth0']]);
  const table = await run('list');
  t.regex(table.stdout, /^NETWORK\s+CONTAINER\s+IFNAME/m);

  const detach = await run('detach', 'demo', ctr, '--container-id', 'ctr-one');
  t.is(detach.status, 0, detach.stderr);
  t.false(existsSync(join(cache, 'results', 'demo-ctr-one-eth0')));
  Netlink.within(ctr, (nl2) => { t.is(nl2.linkByName('eth0'), null); });
  t.deepEqual(readdirSync(join(data, 'demo')).filter((f) => /^\d/.test(f)), [], 'address released');
});

test.serial('the default container ID is stable, so detach finds what attach made', async (t) => {
  const ctr = ns.add('ctr2');
  t.is((await run('attach', 'demo', ctr)).status, 0);
  const id = JSON.parse((await run('list', '--json')).stdout).attachments[0].containerID;
  t.regex(id, /^cnictl-[0-9a-f]{20}$/);
  t.is((await run('detach', 'demo', ctr)).status, 0);
  t.deepEqual(JSON.parse((await run('list', '--json')).stdout).attachments, []);
});

test.serial('gc without a valid set removes every cached attachment of the network', async (t) => {
  const a = ns.add('gca');
  const b = ns.add('gcb');
  t.is((await run('attach', 'demo', a)).status, 0);
  t.is((await run('attach', 'demo', b)).status, 0);
  const gc = await run('gc', 'demo', '--json');
  t.is(gc.status, 0, gc.stdout + gc.stderr);
  t.is(JSON.parse(gc.stdout).deleted.length, 2);
  t.deepEqual(readdirSync(join(data, 'demo')).filter((f) => /^\d/.test(f)), []);
});

test.serial('errors: plugin error with its code, unknown network, usage', async (t) => {
  const ctr = ns.add('err');
  const bad = await run('attach', 'broken', ctr);
  t.is(bad.status, 1);
  t.regex(bad.stderr, /error \d+: plugin type="bridge" name="broken" failed \(add\)/);
  const badJson = await run('attach', 'broken', ctr, '--json');
  t.is(typeof JSON.parse(badJson.stdout).error.code, 'number');
  const missing = await run('attach', 'nosuch', ctr);
  t.is(missing.status, 3);
  t.regex(missing.stderr, /no network named "nosuch".*found: demo, broken, tnet/);
  const usage = await run('attach', 'demo');
  t.is(usage.status, 2);
  t.regex(usage.stderr, /attach needs <network> <netns>/);
  const unknown = await run('--frobnicate');
  t.is(unknown.status, 2);
});

test.serial('networks, version and netns commands', async (t) => {
  const nets = await run('networks', '--json');
  t.deepEqual(JSON.parse(nets.stdout).networks.map((n: any) => n.name), ['demo', 'broken', 'tnet']);
  const v = await run('version', 'bridge', '--json');
  t.true(JSON.parse(v.stdout).supportedVersions.includes('1.0.0'));
  const name = `${ns.prefix}-bycli`;
  t.is((await run('netns', 'add', name)).status, 0);
  t.true((await run('netns', 'ls')).stdout.split('\n').includes(name));
  t.is((await run('netns', 'del', name)).status, 0);
  t.false((await run('netns', 'ls')).stdout.split('\n').includes(name));
});

test.serial('ipam ls and ipam release on a tether-ipam network', async (t) => {
  const ctr = ns.add('ipam');
  t.is((await run('attach', 'tnet', ctr, '--container-id', 'ip-one', '--cni-path', `${fileURLToPath(new URL('../../../dist/bin/', import.meta.url))}`)).status, 0);
  const ls = await run('ipam', 'ls', 'tnet', '--json');
  t.is(ls.status, 0, ls.stderr);
  const j = JSON.parse(ls.stdout);
  t.deepEqual(j.allocations.map((a: any) => [a.ip, a.containerID, a.ifname]), [['10.94.0.2', 'ip-one', 'eth0']]);
  t.deepEqual(j.rangeSets[0], { index: 0, ranges: '10.94.0.1-10.94.0.254', used: 1, size: 253 });
  t.regex((await run('ipam', 'ls', 'tnet')).stdout, /10\.94\.0\.2\s+ip-one\s+eth0/);
  // gc: the namespace still exists, so nothing is stale
  t.deepEqual(JSON.parse((await run('ipam', 'gc', 'tnet', '--grace', '0', '--json')).stdout).released, []);
  const rel = await run('ipam', 'release', 'tnet', 'ip-one', '--json');
  t.deepEqual(JSON.parse(rel.stdout).released, ['10.94.0.2']);
  t.deepEqual(JSON.parse((await run('ipam', 'ls', 'tnet', '--json')).stdout).allocations, []);
  const notIpam = await run('ipam', 'ls', 'demo');
  t.is(notIpam.status, 2);
  t.regex(notIpam.stderr, /does not use tether-ipam/);
  t.is((await run('detach', 'tnet', ctr, '--container-id', 'ip-one', '--cni-path', `${fileURLToPath(new URL('../../../dist/bin/', import.meta.url))}`)).status, 0);
});

test.serial('ipam gc releases an attachment whose namespace is gone (after the grace period)', async (t) => {
  const bin = fileURLToPath(new URL('../../../dist/bin/', import.meta.url));
  const ctr = ns.add('gcgone');
  t.is((await run('attach', 'tnet', ctr, '--container-id', 'gone-one', '--cni-path', bin)).status, 0);
  ns.remove('gcgone');
  const young = JSON.parse((await run('ipam', 'gc', 'tnet', '--json')).stdout);
  t.deepEqual(young.released, [], 'within the default 60 s grace period nothing is released');
  const gc = JSON.parse((await run('ipam', 'gc', 'tnet', '--grace', '0', '--json')).stdout);
  t.deepEqual(gc.released.map((a: any) => a.containerID), ['gone-one']);
  t.deepEqual(JSON.parse((await run('ipam', 'ls', 'tnet', '--json')).stdout).allocations, []);
});

test.serial('cnictl conformance runs the harness from the compiled binary', async (t) => {
  const networks = fileURLToPath(new URL('../../../conformance/networks/', import.meta.url));
  const report = join(data, 'report.json');
  const bin = fileURLToPath(new URL('../../../dist/bin/', import.meta.url));
  const out = await runIn(undefined, cnictl, ['conformance', 'tether-bridge', '--conf-dir', networks, '--cni-path', bin, '--report', report], 120_000);
  t.is(out.status, 0, out.stdout + out.stderr);
  t.regex(out.stdout, /25 cases; pass 25, fail 0, skip 0/);
  const r = JSON.parse(readFileSync(report, 'utf8'));
  t.is(r.summary.failed, 0);
  t.deepEqual(r.leftovers, []);
});

test.after.always('nothing left', (t) => {
  ns.cleanup();
  t.deepEqual(ns.leftovers(), []);
});
