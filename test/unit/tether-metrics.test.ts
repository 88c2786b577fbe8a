import test from 'ava';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Allocator } from '../../ipam/allocator.js';
import { parseIpamConfig } from '../../ipam/config.js';
import { appendLine } from '../../lib/log.js';
import { FileKV } from '../../lib/store/file.js';
import type { NetConf } from '../../lib/cni/types.js';
import { collectIpam, OpLogFollower, tetherMetrics } from '../../observe/tether-metrics.js';

const dir = () => mkdtempSync(join(tmpdir(), 'tether-metrics-'));
const op = (command: string, result: 'ok' | 'error', ms: number, code?: number) =>
  `${JSON.stringify({ time: new Date().toISOString(), level: result === 'ok' ? 'info' : 'error', component: 'tether-bridge', msg: 'operation', command, plugin: 'tether-bridge', duration_ms: ms, result, ...(code ? { error: { code, msg: 'x' } } : {}) })}\n`;

test('the proposed metric set exposes without clashes and in the text format', async (t) => {
  const m = tetherMetrics();
  m.buildInfo.set({ version: '0.1.0' }, 1);
  m.bgpSessionUp.set({ peer: '198.18.0.2' }, 1);
  const text = await m.registry.expose();
  t.regex(text, /^tether_build_info\{version="0\.1\.0"\} 1$/m);
  t.regex(text, /^# TYPE tether_cni_operation_duration_seconds histogram$/m);
  t.regex(text, /^tether_bgp_session_up\{peer="198\.18\.0\.2"\} 1$/m);
});

test('the plugins\' operation log becomes operation counts, latencies and errors, across rotations', async (t) => {
  const d = dir();
  const file = join(d, 'cni.log');
  appendLine(file, op('ADD', 'ok', 99));
  const m = tetherMetrics();
  const f = new OpLogFollower(file, m).attach();
  t.is(f.poll(), 0, 'history before the agent started is not counted');
  const rot = { maxBytes: 600, keep: 5 };
  // Enough lines to rotate several times; poll in between, as scrapes would.
  for (let i = 0; i < 12; i++) {
    appendLine(file, op('ADD', 'ok', 20), rot);
    appendLine(file, op('DEL', 'error', 5, 11), rot);
    if (i % 3 === 2) f.poll();
  }
  appendLine(file, '{"msg":"not an operation"}\n', rot);
  appendLine(file, 'garbage\n', rot);
  const text = await m.registry.expose();
  t.regex(text, /^tether_cni_operations_total\{plugin="tether-bridge",command="ADD",result="ok"\} 12$/m);
  t.regex(text, /^tether_cni_operations_total\{plugin="tether-bridge",command="DEL",result="error"\} 12$/m);
  t.regex(text, /^tether_errors_total\{component="tether-bridge",code="11"\} 12$/m);
  t.regex(text, /^tether_cni_operation_duration_seconds_bucket\{plugin="tether-bridge",command="ADD",le="0\.025"\} 12$/m);
  t.regex(text, /^tether_cni_operation_duration_seconds_bucket\{plugin="tether-bridge",command="ADD",le="0\.01"\} 0$/m);
  rmSync(d, { recursive: true, force: true });
});

test('IPAM gauges from every tether-ipam network of the conf dir', async (t) => {
  const d = dir();
  const conf = join(d, 'net.d');
  mkdirSync(conf);
  const ipam = { type: 'tether-ipam', dataDir: join(d, 'ipam'), nodeName: 'n1', ranges: [[{ subnet: '10.40.0.0/24' }]] };
  writeFileSync(join(conf, '10-a.conflist'), JSON.stringify({ cniVersion: '1.0.0', name: 'a', plugins: [{ type: 'tether-bridge', ipam }] }));
  writeFileSync(join(conf, '20-hl.conflist'), JSON.stringify({ cniVersion: '1.0.0', name: 'hl', plugins: [{ type: 'bridge', ipam: { type: 'host-local', subnet: '10.41.0.0/24' } }] }));
  const cfg = parseIpamConfig({ cniVersion: '1.0.0', name: 'a', type: 'tether-bridge', ipam } as NetConf);
  const alloc = new Allocator(new FileKV(join(cfg.dataDir, cfg.network)), cfg);
  for (const id of ['c1', 'c2', 'c3']) await alloc.allocate({ containerID: id, ifname: 'eth0' });
  const m = tetherMetrics();
  collectIpam(m, conf);
  let text = await m.registry.expose();
  t.regex(text, /^tether_ipam_addresses_used\{network="a",range_set="10\.40\.0\.1-10\.40\.0\.254"\} 3$/m);
  t.regex(text, /^tether_ipam_addresses\{network="a",range_set="10\.40\.0\.1-10\.40\.0\.254"\} 253$/m);
  t.regex(text, /^tether_ipam_blocks\{network="a",node="n1"\} 1$/m);
  t.notRegex(text, /network="hl"/);
  await alloc.release({ containerID: 'c1', ifname: 'eth0' });
  text = await m.registry.expose();
  t.regex(text, /^tether_ipam_addresses_used\{network="a",range_set="[^"]+"\} 2$/m, 'read again at every scrape');
  rmSync(d, { recursive: true, force: true });
});
