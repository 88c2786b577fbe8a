import test from 'ava';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { runIn } from '../../conformance/spawn.js';
import { netnsPath } from '../../lib/netns/netns.js';
import { joinNewNode, labDown, labUp, restartEtcd, type LabNode, type LabState } from '../../lab/index.js';
import { vxlanFiles, vxlanMode } from '../../lab/vxlan.js';
import { readNodeState } from '../../lib/node-state.js';
import { DIST } from '../helpers/podman.js';
import { paced } from '../helpers/pace.js';

// A running tetherd (the compiled binary, in a lab node's namespace) serves /metrics and keeps the health
// file cnictl status reads. Scraped from inside the node namespace with busybox wget (busybox-static).

let lab: LabState | undefined;
const dir = mkdtempSync(join(tmpdir(), 'to2-obs-'));
// Short leases so renewals happen within the test: renewed every 2 s.
test.before(async () => { lab = await labUp({ nodes: 2, podsPerNode: 1, mode: 'vxlan', dir: join(dir, 'lab'), modeOptions: { leaseTTL: 6 } }); });
test.after.always('the lab is removed', async (t) => {
  const left = lab ? await labDown(lab) : [];
  rmSync(dir, { recursive: true, force: true });
  t.deepEqual(left, []);
});

async function get(node: LabNode, path: string): Promise<string> {
  const r = await runIn(netnsPath(node.netns), '/bin/busybox', ['wget', '-q', '-O-', `http://127.0.0.1:9310${path}`], 15_000);
  if (r.status !== 0) throw new Error(`GET ${path} on ${node.name}: exit ${r.status} ${r.stderr}`);
  return r.stdout;
}

/** The sample's value, or undefined when the series is absent. Labels must match exactly (in order). */
function sample(text: string, name: string, labels = ''): number | undefined {
  const line = text.split('\n').find((l) => l.startsWith(`${name}${labels ? `{${labels}}` : ''} `));
  return line === undefined ? undefined : Number(line.slice(line.lastIndexOf(' ') + 1));
}

/** How tether-ipam names a /24 range set: its first to last host address. */
const hostRange = (subnet: string) => { const p = subnet.split('/')[0].split('.').slice(0, 3).join('.'); return `${p}.1-${p}.254`; };

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

test.serial('tetherd serves /metrics and /healthz in its node namespace; node and lease gauges and route changes follow a node joining', async (t) => {
  const [n1] = lab!.nodes;
  t.is((await get(n1, '/healthz')).trim(), 'ok');
  const before = await get(n1, '/metrics');
  t.is(sample(before, 'tether_build_info', 'version="0.1.0"'), 1);
  t.is(sample(before, 'tether_remote_nodes', 'state="programmed"'), 1);
  t.is(sample(before, 'tether_remote_nodes', 'state="known"'), 1);
  t.is(sample(before, 'tether_routes', 'source="vxlan"'), 1);
  t.is(sample(before, 'tether_node_leases', 'state="live"'), 2);
  // Allocations: the node's pod network (lab/vxlan.ts writes it into the conf dir tetherd is given).
  const used = /^tether_ipam_addresses_used\{network="lab-overlay",range_set="([^"]+)"\} (\d+)$/m.exec(before);
  t.deepEqual(used?.slice(1), [hostRange(readNodeState(vxlanFiles(n1).state)!.subnet), '1'], 'one pod address in use on the node subnet');
  t.true((sample(before, 'tether_agent_operation_duration_seconds_count', 'operation="store_list"') ?? 0) >= 1);
  const added = sample(before, 'tether_route_changes_total', 'source="vxlan",op="add"') ?? 0;
  const resyncs = sample(before, 'tether_agent_resyncs_total', 'reason="listed the store"');
  t.true((resyncs ?? 0) >= 1, 'the start-up listing counts as a reconcile');

  await joinNewNode(lab!);
  const after = await get(n1, '/metrics');
  t.is(sample(after, 'tether_remote_nodes', 'state="programmed"'), 2);
  t.is(sample(after, 'tether_remote_nodes', 'state="known"'), 2);
  t.is(sample(after, 'tether_node_leases', 'state="live"'), 3);
  t.is(sample(after, 'tether_route_changes_total', 'source="vxlan",op="add"'), added + 1, 'the join was one route added');

  // Lease renewals (every 2 s here): counted as they happen. Bounded: 20 s.
  let renewed = 0;
  for (const until = Date.now() + paced(20_000); Date.now() < until && renewed < 1; await sleep(500)) {
    renewed = sample(await get(n1, '/metrics'), 'tether_node_lease_renewals_total', 'result="ok"') ?? 0;
  }
  t.true(renewed >= 1, 'a lease renewal is counted');
});

test.serial('an etcd restart shows as watch restarts and agent errors; the node gauges recover', async (t) => {
  const [n1] = lab!.nodes;
  const count = (text: string, name: string, labels: string) => sample(text, name, labels) ?? 0;
  const before = await get(n1, '/metrics');
  await restartEtcd(lab!);
  let after = '';
  for (const until = Date.now() + paced(20_000); Date.now() < until; await sleep(250)) {
    after = await get(n1, '/metrics');
    if (count(after, 'tether_agent_watch_restarts_total', 'reason="broken"') > count(before, 'tether_agent_watch_restarts_total', 'reason="broken"')
      && sample(after, 'tether_node_leases', 'state="live"') === 3) break;
  }
  t.true(count(after, 'tether_agent_watch_restarts_total', 'reason="broken"') > count(before, 'tether_agent_watch_restarts_total', 'reason="broken"'), 'the broken watch was counted');
  t.true(count(after, 'tether_errors_total', 'component="tetherd",code="watch_broken"') >= 1, 'and counted as an agent error with its stable code');
  t.is(sample(after, 'tether_node_leases', 'state="live"'), 3, 'leases read again once etcd is back');
  t.is(sample(after, 'tether_remote_nodes', 'state="programmed"'), 2);
});

test.serial('tetherd keeps its health file; cnictl status shows the agent running with its subnet, then not running after SIGTERM', async (t) => {
  const [n1] = lab!.nodes;
  const f = vxlanFiles(n1);
  const health = JSON.parse(readFileSync(f.health, 'utf8'));
  t.like(health, { pid: n1.agentPid, mode: 'vxlan', node: 'n1', subnet: readNodeState(f.state)!.subnet, metrics: '127.0.0.1:9310' });
  t.true(Date.now() - Date.parse(health.updatedAt) < 60_000);
  const status = (...extra: string[]) => runIn(netnsPath(n1.netns), join(DIST, 'cnictl'), ['status', '--conf-dir', f.confDir, '--cache-dir', join(n1.dir, 'cache'), '--agent-state', f.health, ...extra], 20_000);
  const r = await status('--json');
  t.is(r.status, 0, r.stderr);
  const s = JSON.parse(r.stdout);
  t.like(s.agent, { state: 'running', pid: n1.agentPid, details: { mode: 'vxlan', subnet: health.subnet } });
  t.like(s.networks.find((n: { name: string }) => n.name === 'lab-overlay'), { plugins: ['tether-vxlan'], attachments: 1, ipam: { rangeSets: [{ ranges: hostRange(health.subnet), used: 1 }] } });
  t.regex((await status()).stdout, /^agent \(tetherd\): running \(pid \d+, updated .*\)\n {2}mode: vxlan/m);
  await vxlanMode.stopNode(lab!, n1);
  t.false(existsSync(f.health), 'a clean stop removes the health file');
  t.like(JSON.parse((await status('--json')).stdout).agent, { state: 'not running' });
});
