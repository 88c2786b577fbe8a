import test from 'ava';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

// systemd/tetherd.service: the settings an operator relies on, and systemd's own verdict on the file.
const unitFile = fileURLToPath(new URL('../../../systemd/tetherd.service', import.meta.url));
const dist = fileURLToPath(new URL('../../../dist/bin/tether', import.meta.url));
const text = readFileSync(unitFile, 'utf8');

function sections(s: string): Record<string, Record<string, string[]>> {
  const out: Record<string, Record<string, string[]>> = {};
  let cur = '';
  for (const raw of s.split('\n')) {
    const line = raw.trim();
    if (!line || line.startsWith('#')) continue;
    const sec = /^\[(\w+)\]$/.exec(line);
    if (sec) { cur = sec[1]; out[cur] = {}; continue; }
    const eq = line.indexOf('=');
    (out[cur][line.slice(0, eq)] ??= []).push(line.slice(eq + 1));
  }
  return out;
}

test('tetherd.service: restarts on failure, runs the installed agent, keeps only the capabilities it needs', (t) => {
  const u = sections(text);
  t.deepEqual(u.Service.ExecStart, ['/opt/cni/bin/tetherd --config /etc/tether/tetherd.json']);
  t.deepEqual(u.Service.Restart, ['on-failure']);
  t.true(['simple', 'notify'].includes(u.Service.Type[0]));
  const caps = u.Service.CapabilityBoundingSet[0].split(' ').sort();
  t.deepEqual(caps, ['CAP_NET_ADMIN', 'CAP_NET_BIND_SERVICE', 'CAP_NET_RAW', 'CAP_SYS_ADMIN']);
  t.deepEqual(u.Service.AmbientCapabilities[0].split(' ').sort(), caps);
  t.true(u.Service.RestrictAddressFamilies[0].split(' ').includes('AF_NETLINK'), 'netlink stays allowed');
  t.deepEqual(u.Service.RestrictNamespaces, ['net'], 'setns into network namespaces stays allowed');
  t.deepEqual(u.Service.NoNewPrivileges, ['yes']);
  t.deepEqual(u.Service.ProtectSystem, ['strict']);
  t.deepEqual(u.Install.WantedBy, ['multi-user.target']);
});

test('systemd-analyze verify accepts the unit (ExecStart pointed at the built binary)', (t) => {
  const d = mkdtempSync(join(tmpdir(), 'tether-unit-'));
  try {
    const copy = join(d, 'tetherd.service');
    writeFileSync(copy, text.replaceAll('/opt/cni/bin/tetherd', dist));
    const r = spawnSync('systemd-analyze', ['verify', copy], { encoding: 'utf8' });
    t.is(r.error, undefined, 'systemd-analyze is installed (package systemd, in .ci/run)');
    t.is(r.status, 0, r.stderr);
    t.is(r.stderr.trim(), '', 'no warnings either');
  } finally { rmSync(d, { recursive: true, force: true }); }
});

// systemd/tetherd-docker.service: the Docker driver's unit, the text `cnictl install --docker` writes.
test('tetherd-docker.service is what cnictl install --docker writes, and systemd-analyze verify accepts it', async (t) => {
  const { dockerUnit } = await import('../../cnictl/docker-unit.js');
  const file = readFileSync(fileURLToPath(new URL('../../../systemd/tetherd-docker.service', import.meta.url)), 'utf8');
  t.is(file, dockerUnit('/opt/cni/bin'));
  const u = sections(file);
  t.deepEqual(u.Service.ExecStart, ['/opt/cni/bin/tetherd docker-plugin --socket /run/docker/plugins/tether.sock --state-dir /var/lib/tether/docker']);
  t.deepEqual(u.Unit.Before, ['docker.service'], 'dockerd finds the socket at its start');
  const d = mkdtempSync(join(tmpdir(), 'tether-unit-'));
  try {
    const copy = join(d, 'tetherd-docker.service');
    writeFileSync(copy, dockerUnit(dist.replace(/\/tether$/, '')));
    const r = spawnSync('systemd-analyze', ['verify', copy], { encoding: 'utf8' });
    t.is(r.status, 0, r.stderr);
    t.is(r.stderr.trim(), '', 'no warnings either');
  } finally { rmSync(d, { recursive: true, force: true }); }
});

// systemd/tetherd-ports.service: the [::1] proxy alone, for a node without the agent.
test('tetherd-ports.service runs the proxy alone, conflicts with tetherd.service (which runs it too), and systemd-analyze verify accepts it', (t) => {
  const file = readFileSync(fileURLToPath(new URL('../../../systemd/tetherd-ports.service', import.meta.url)), 'utf8');
  const u = sections(file);
  t.deepEqual(u.Service.ExecStart, ['/opt/cni/bin/tetherd ports-proxy']);
  t.deepEqual(u.Unit.Conflicts, ['tetherd.service']);
  t.true(u.Service.RestrictAddressFamilies[0].split(' ').includes('AF_INET6'), 'it listens on [::1]');
  const d = mkdtempSync(join(tmpdir(), 'tether-unit-'));
  try {
    const copy = join(d, 'tetherd-ports.service');
    writeFileSync(copy, file.replaceAll('/opt/cni/bin/tetherd', dist));
    const r = spawnSync('systemd-analyze', ['verify', copy], { encoding: 'utf8' });
    t.is(r.status, 0, r.stderr);
    t.is(r.stderr.trim(), '', 'no warnings either');
  } finally { rmSync(d, { recursive: true, force: true }); }
});
