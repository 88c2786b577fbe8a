import test from 'ava';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { runIn } from '../../conformance/spawn.js';
import { Namespaces } from '../helpers/netns.js';

// `cnictl status` with no network: the node summary, from the compiled binary inside a throwaway host namespace.
const cnictl = fileURLToPath(new URL('../../../dist/bin/cnictl', import.meta.url));
const dist = fileURLToPath(new URL('../../../dist/bin/', import.meta.url));
const ns = new Namespaces('top');
const dir = mkdtempSync(join(tmpdir(), 'tether-status-'));
test.after.always(() => { ns.cleanup(); rmSync(dir, { recursive: true, force: true }); });
const [conf, cache, data, state] = ['conf', 'cache', 'ipam', 'tetherd.json'].map((d) => join(dir, d));
spawnSync('mkdir', ['-p', conf]);
writeFileSync(join(conf, '10-tnet.conflist'), JSON.stringify({
  cniVersion: '1.1.0', name: 'tnet',
  plugins: [{ type: 'tether-bridge', bridge: 'stbr0', isGateway: true, ipam: { type: 'tether-ipam', dataDir: data, ranges: [[{ subnet: '10.96.0.0/24' }], [{ subnet: '10.97.0.0/28' }]] } }],
}));
writeFileSync(join(conf, '20-hl.conflist'), JSON.stringify({
  cniVersion: '1.0.0', name: 'hl',
  plugins: [{ type: 'tether-bridge', bridge: 'stbr1', isGateway: true, ipam: { type: 'host-local', dataDir: data, ranges: [[{ subnet: '10.98.0.0/24' }]] } }],
}));
writeFileSync(join(conf, '30-broken.conflist'), '{"name": ');

const host = ns.add('host');
const run = (...args: string[]) => runIn(host, cnictl, ['--conf-dir', conf, '--cni-path', `${dist}:/usr/lib/cni`, '--cache-dir', cache, '--agent-state', state, ...args], 30_000);

test.serial('the node summary: networks, attachments, IPAM use, agent not running', async (t) => {
  for (const [net, c] of [['tnet', 'c1'], ['tnet', 'c2'], ['hl', 'c3']]) {
    const r = await run('attach', net, ns.add(c));
    t.is(r.status, 0, r.stdout + r.stderr);
  }
  const r = await run('status', '--json');
  t.is(r.status, 0, r.stderr);
  const s = JSON.parse(r.stdout);
  t.is(s.attachments.length, 3);
  const by = Object.fromEntries(s.networks.map((n: any) => [n.name ?? '(invalid)', n]));
  t.like(by.tnet, { plugins: ['tether-bridge'], attachments: 2, ipam: { rangeSets: [{ used: 2, size: 253 }, { used: 2, size: 13 }] } });
  t.like(by.hl, { attachments: 1 });
  t.is(by.hl.ipam, undefined, 'host-local keeps its own state: not summarised');
  t.regex(by['(invalid)'].error, /not valid JSON/);
  t.like(s.agent, { state: 'not running', reason: `no ${state}` });

  const text = await run('status');
  t.regex(text.stdout, /^agent \(tetherd\): not running/m);
  t.regex(text.stdout, /^tnet\s+tether-bridge\s+2\s+10\.96\.0\.1-10\.96\.0\.254: 2\/253; \S+: 2\/13/m);
  t.regex(text.stdout, /^attachments: 3 in /m);
});

test.serial('agent health from tetherd\'s state file: running, stale when its PID is gone or it stops updating', async (t) => {
  writeFileSync(state, JSON.stringify({ pid: process.pid, updatedAt: new Date().toISOString(), sessions: { up: 2, down: 0 } }));
  let a = JSON.parse((await run('status', '--json')).stdout).agent;
  t.like(a, { state: 'running', pid: process.pid, details: { sessions: { up: 2, down: 0 } } });
  t.regex((await run('status')).stdout, /^agent \(tetherd\): running \(pid \d+, updated .*\)\n  sessions: \{"up":2,"down":0\}/m);

  writeFileSync(state, JSON.stringify({ pid: process.pid, updatedAt: new Date(Date.now() - 5 * 60_000).toISOString() }));
  a = JSON.parse((await run('status', '--json')).stdout).agent;
  t.is(a.state, 'stale');
  t.regex(a.reason, /not updated for 3\d\d s/);

  const gone = spawnSync('true').pid; // a PID that has exited
  writeFileSync(state, JSON.stringify({ pid: gone, updatedAt: new Date().toISOString() }));
  a = JSON.parse((await run('status', '--json')).stdout).agent;
  t.like(a, { state: 'stale', reason: `process ${gone} is not running` });
});

test.serial('status <network> is still the CNI STATUS verb', async (t) => {
  const r = await run('status', 'tnet');
  t.is(r.status, 0, r.stderr);
  t.is(r.stdout.trim(), 'tnet: ready');
  for (const [net, c] of [['tnet', 'c1'], ['tnet', 'c2'], ['hl', 'c3']]) t.is((await run('detach', net, join('/run/netns', `${ns.prefix}-${c}`))).status, 0);
  const s = JSON.parse((await run('status', '--json')).stdout);
  t.deepEqual(s.attachments, []);
  t.is(s.networks.find((n: any) => n.name === 'tnet').ipam.rangeSets[0].used, 0);
});
