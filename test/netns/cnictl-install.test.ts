import test from 'ava';
import { existsSync, lstatSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, readlinkSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { runIn } from '../../conformance/spawn.js';
import { LINKS } from '../../lib/programs.js';
import { parseNetworkList } from '../../lib/libcni/conf.js';
import { runConformance } from '../../conformance/harness.js';

// `cnictl install` / `uninstall` of the shipped binary, always into temporary directories given by the
// flags: the real /opt/cni/bin and /etc/cni/net.d are never touched.
const cnictl = fileURLToPath(new URL('../../../dist/bin/cnictl', import.meta.url));
const run = (...args: string[]) => runIn(undefined, cnictl, args, 30_000);
const roots: string[] = [];
test.after.always(() => { for (const r of roots) rmSync(r, { recursive: true, force: true }); });
const dirs = () => {
  const root = mkdtempSync(join(tmpdir(), 'tether-install-'));
  roots.push(root);
  return { root, bin: join(root, 'opt', 'cni', 'bin'), conf: join(root, 'etc', 'cni', 'net.d') };
};
const listing = (root: string) => readdirSync(root, { recursive: true }).map(String).sort();

test('--dry-run shows the plan and changes nothing', async (t) => {
  const d = dirs();
  const r = await run('install', '--bin-dir', d.bin, '--conf-dir', d.conf, '--dry-run');
  t.is(r.status, 0, r.stderr);
  t.regex(r.stdout, /dry run, nothing changed/);
  t.regex(r.stdout, new RegExp(`copy +\\S+/tether -> ${d.bin}/tether`));
  for (const l of LINKS) t.regex(r.stdout, new RegExp(`link +${d.bin}/${l} -> tether`));
  t.regex(r.stdout, /"type": "tether-bridge"/, 'the conflist it would write is shown');
  t.deepEqual(listing(d.root), []);
  const j = JSON.parse((await run('install', '--bin-dir', d.bin, '--conf-dir', d.conf, '--dry-run', '--json')).stdout);
  t.true(j.install.dryRun);
  t.true(j.install.actions.some((a: any) => a.kind === 'write' && a.path === join(d.conf, '10-tether.conflist')));
  t.deepEqual(listing(d.root), []);
});

test('install copies the binary, links every program, writes a working default conflist; uninstall removes them', async (t) => {
  const d = dirs();
  const r = await run('install', '--bin-dir', d.bin, '--conf-dir', d.conf, '--subnet', '10.61.0.0/16');
  t.is(r.status, 0, r.stderr);
  const bin = join(d.bin, 'tether');
  t.true(lstatSync(bin).isFile());
  t.is(lstatSync(bin).mode & 0o777, 0o755);
  t.deepEqual(readFileSync(bin).subarray(0, 4096), readFileSync(fileURLToPath(new URL('../../../dist/bin/tether', import.meta.url))).subarray(0, 4096));
  for (const l of LINKS) t.is(readlinkSync(join(d.bin, l)), 'tether', l);
  // The installed plugin answers, through its link.
  const v = await runIn(undefined, join(d.bin, 'tether-bridge'), [], 10_000);
  t.is(v.status, 0);
  const conf = JSON.parse(readFileSync(join(d.conf, '10-tether.conflist'), 'utf8'));
  t.like(conf, { name: 'tether', plugins: [{ type: 'tether-bridge', ipMasq: true, ipam: { type: 'tether-ipam', ranges: [[{ subnet: '10.61.0.0/16' }]] } }] });
  // The installed cnictl reads it back as a valid network.
  const nets = JSON.parse((await runIn(undefined, join(d.bin, 'cnictl'), ['--conf-dir', d.conf, 'networks', '--json'], 10_000)).stdout);
  t.deepEqual(nets.networks.map((n: any) => [n.name, n.plugins, n.error]), [['tether', ['tether-bridge'], undefined]]);

  // The installed plugins on the installed conflist work: the harness runs them from the bin dir.
  const list = parseNetworkList(Buffer.from(JSON.stringify({ ...conf, plugins: [{ ...conf.plugins[0], log: { ...conf.plugins[0].log, file: join(d.root, 'cni.log') } }] })));
  const report = await runConformance({ list, path: [d.bin], only: ['add-result@1.1.0', 'reach-gateway', 'ipmasq', 'del-leaves-nothing'] });
  t.deepEqual(report.cases.map((c) => [c.id, c.status]), [['add-result@1.1.0', 'pass'], ['reach-gateway', 'pass'], ['ipmasq', 'pass'], ['del-leaves-nothing', 'pass']]);

  const again = await run('install', '--bin-dir', d.bin, '--conf-dir', d.conf);
  t.is(again.status, 0, again.stderr);
  t.regex(again.stdout, /keep +\S+10-tether\.conflist: a configuration for network "tether" exists/);

  const u = await run('uninstall', '--bin-dir', d.bin, '--conf-dir', d.conf);
  t.is(u.status, 0, u.stderr);
  t.deepEqual(readdirSync(d.bin), []);
  t.deepEqual(readdirSync(d.conf), [], 'the unchanged default conflist goes too');
});

test('an existing tether conflist is kept, and a changed one survives uninstall', async (t) => {
  const d = dirs();
  mkdirSync(d.conf, { recursive: true });
  const mine = JSON.stringify({ cniVersion: '1.0.0', name: 'tether', plugins: [{ type: 'tether-bridge', bridge: 'mine0' }] });
  writeFileSync(join(d.conf, '50-mine.conflist'), mine);
  t.is((await run('install', '--bin-dir', d.bin, '--conf-dir', d.conf)).status, 0);
  t.deepEqual(readdirSync(d.conf), ['50-mine.conflist']);
  t.is(readFileSync(join(d.conf, '50-mine.conflist'), 'utf8'), mine);
  t.is((await run('uninstall', '--bin-dir', d.bin, '--conf-dir', d.conf)).status, 0);
  t.deepEqual(readdirSync(d.conf), ['50-mine.conflist'], 'not written by install: never removed');

  const e = dirs();
  t.is((await run('install', '--bin-dir', e.bin, '--conf-dir', e.conf)).status, 0);
  const file = join(e.conf, '10-tether.conflist');
  writeFileSync(file, readFileSync(file, 'utf8').replace('tether0', 'edited0'));
  const u = await run('uninstall', '--bin-dir', e.bin, '--conf-dir', e.conf);
  t.regex(u.stdout, /keep +\S+10-tether\.conflist: changed since install/);
  t.true(existsSync(file));
});

test('files that are not tether\'s are never replaced without --force; bad input is a usage error', async (t) => {
  const d = dirs();
  mkdirSync(d.bin, { recursive: true });
  writeFileSync(join(d.bin, 'cnictl'), '#!/bin/sh\necho someone else\n');
  symlinkSync('/usr/lib/cni/bridge', join(d.bin, 'tether-bridge'));
  const r = await run('install', '--bin-dir', d.bin, '--conf-dir', d.conf);
  t.is(r.status, 2);
  t.regex(r.stderr, /refusing to replace files that are not tether's/);
  t.regex(r.stderr, /cnictl exists and is not tether's \(a file\)/);
  t.regex(r.stderr, /tether-bridge exists and is not tether's \(a link to \/usr\/lib\/cni\/bridge\)/);
  t.deepEqual(readdirSync(d.bin).sort(), ['cnictl', 'tether-bridge'], 'nothing done at all');
  t.false(existsSync(d.conf));
  const f = await run('install', '--bin-dir', d.bin, '--conf-dir', d.conf, '--force');
  t.is(f.status, 0, f.stderr);
  t.is(readlinkSync(join(d.bin, 'cnictl')), 'tether');
  const bad = await run('install', '--bin-dir', d.bin, '--conf-dir', d.conf, '--subnet', '10.1.2.3/16');
  t.is(bad.status, 2);
  t.regex(bad.stderr, /--subnet must be a network address/);
});

test('install --docker writes tetherd-docker.service pointing at the installed tetherd; uninstall removes it only while unchanged', async (t) => {
  const d = dirs();
  const units = join(d.root, 'etc', 'systemd', 'system');
  const r = await run('install', '--bin-dir', d.bin, '--conf-dir', d.conf, '--docker', '--systemd-dir', units);
  t.is(r.status, 0, r.stderr);
  const unit = readFileSync(join(units, 'tetherd-docker.service'), 'utf8');
  t.true(unit.includes(`ExecStart=${d.bin}/tetherd docker-plugin --socket /run/docker/plugins/tether.sock`));
  t.is((await run('install', '--bin-dir', d.bin, '--conf-dir', d.conf, '--docker', '--systemd-dir', units)).status, 0, 'a second install is fine');
  writeFileSync(join(units, 'tetherd-docker.service'), `${unit}# edited\n`);
  const refused = await run('install', '--bin-dir', d.bin, '--conf-dir', d.conf, '--docker', '--systemd-dir', units, '--from', join(d.bin, 'tether'));
  t.not(refused.status, 0);
  t.regex(refused.stderr, /tetherd-docker\.service exists and is not the one tether installed/);
  const u = await run('uninstall', '--bin-dir', d.bin, '--conf-dir', d.conf);
  t.is(u.status, 0, u.stderr);
  t.regex(u.stdout, /keep +\S+tetherd-docker\.service: changed since install/);
  writeFileSync(join(units, 'tetherd-docker.service'), unit);
  t.true(existsSync(join(units, 'tetherd-docker.service')));
});
