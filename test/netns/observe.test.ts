import test from 'ava';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { runIn, startIn, stop, waitForLine } from '../../conformance/spawn.js';
import { Netlink } from '../../lib/netlink/handle.js';
import { Namespaces } from '../helpers/netns.js';

// The whole observation path: real plugin runs (through the compiled cnictl) write their operation
// lines; the metrics endpoint tetherd will serve turns them, and the IPAM store, into series; a scrape
// over loopback in the test's namespace reads them.
const cnictl = fileURLToPath(new URL('../../../dist/bin/cnictl', import.meta.url));
const dist = fileURLToPath(new URL('../../../dist/bin/', import.meta.url));
const serve = fileURLToPath(new URL('../helpers/observe-serve.js', import.meta.url));
const ns = new Namespaces('top');
const dir = mkdtempSync(join(tmpdir(), 'tether-observe-'));
test.after.always(() => { ns.cleanup(); rmSync(dir, { recursive: true, force: true }); });

test('plugin operations and IPAM use appear in /metrics', async (t) => {
  const [conf, cache, data, log] = ['conf', 'cache', 'ipam', 'cni.log'].map((d) => join(dir, d));
  mkdirSync(conf);
  writeFileSync(join(conf, '10-obs.conflist'), JSON.stringify({
    cniVersion: '1.1.0', name: 'obs',
    plugins: [{ type: 'tether-bridge', bridge: 'obsbr0', isGateway: true, log: { file: log }, ipam: { type: 'tether-ipam', dataDir: data, ranges: [[{ subnet: '10.93.0.0/28' }]] } }],
  }));
  const host = ns.add('host');
  Netlink.within(host, (nl) => { nl.linkSet(nl.linkByName('lo')!.index, { up: true }); });
  const run = (...args: string[]) => runIn(host, cnictl, ['--conf-dir', conf, '--cni-path', dist, '--cache-dir', cache, ...args], 30_000);

  const server = startIn(host, process.execPath, [serve, '127.0.0.1:0', conf, log]);
  try {
    const address = (await waitForLine(server, 'ready', 10_000)).split(' ')[1];
    for (const c of ['a', 'b']) t.is((await run('attach', 'obs', ns.add(c))).status, 0);
    t.is((await run('detach', 'obs', join('/run/netns', `${ns.prefix}-b`))).status, 0);
    // A failing ADD: the same container attached twice on one interface.
    t.is((await run('attach', 'obs', join('/run/netns', `${ns.prefix}-a`), '--container-id', 'dup')).status, 1);

    const r = await runIn(host, process.execPath, ['-e', `fetch('http://${address}/metrics').then((r) => r.text()).then((b) => process.stdout.write(b))`], 10_000);
    t.is(r.status, 0, r.stderr);
    const body = r.stdout;
    t.regex(body, /^tether_build_info\{version="test"\} 1$/m);
    t.regex(body, /^tether_cni_operations_total\{plugin="tether-bridge",command="ADD",result="ok"\} 2$/m);
    t.regex(body, /^tether_cni_operations_total\{plugin="tether-bridge",command="DEL",result="ok"\} [12]$/m, 'the detach (and the failed ADD\'s cleanup DEL, if the runtime sends one)');
    t.regex(body, /^tether_cni_operations_total\{plugin="tether-bridge",command="ADD",result="error"\} 1$/m);
    t.regex(body, /^tether_errors_total\{component="tether-bridge",code="\d+"\} 1$/m);
    t.regex(body, /^tether_cni_operation_duration_seconds_count\{plugin="tether-bridge",command="ADD"\} 3$/m);
    t.regex(body, /^tether_ipam_addresses_used\{network="obs",range_set="10\.93\.0\.1-10\.93\.0\.14"\} 1$/m);
    t.regex(body, /^tether_ipam_addresses\{network="obs",range_set="10\.93\.0\.1-10\.93\.0\.14"\} 13$/m);
  } finally {
    server.stdin!.end();
    stop(server);
  }
});
