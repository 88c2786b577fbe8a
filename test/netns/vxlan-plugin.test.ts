import test from 'ava';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { runIn } from '../../conformance/spawn.js';
import { Netlink } from '../../lib/netlink/handle.js';
import { writeNodeState } from '../../lib/node-state.js';
import { Namespaces } from '../helpers/netns.js';
import { parseIpamConfig } from '../../ipam/config.js';
import { openStore } from '../../ipam/store.js';
import { Allocator } from '../../ipam/allocator.js';

// tether-vxlan exec'd as a runtime would, in a throwaway node namespace, without tetherd: the state file is written by hand.
const bin = fileURLToPath(new URL('../../../dist/bin/tether-vxlan', import.meta.url));
const ns = new Namespaces();
const dir = mkdtempSync(join(tmpdir(), 'tvx-plugin-'));
test.after.always(() => { ns.cleanup(); rmSync(dir, { recursive: true, force: true }); });

const conf = (stateFile: string) => JSON.stringify({ cniVersion: '1.0.0', name: 'ovl', type: 'tether-vxlan', stateFile, dataDir: join(dir, 'data') });
const env = (command: string, netns: string, id: string) => ({ PATH: '/usr/bin:/bin', CNI_COMMAND: command, CNI_CONTAINERID: id, CNI_NETNS: netns, CNI_IFNAME: 'eth0', CNI_PATH: join(bin, '..') });

/** Addresses tether-ipam holds in the generated config's store (dataDir/ipam/<network>). */
async function held(): Promise<string[]> {
  const cfg = parseIpamConfig({ cniVersion: '1.0.0', name: 'ovl', type: 'tether-vxlan', ipam: { type: 'tether-ipam', dataDir: join(dir, 'data', 'ipam'), ranges: [[{ subnet: '10.245.7.0/24' }]] } } as never);
  const kv = openStore(cfg);
  try { return (await new Allocator(kv, cfg).list()).map((a) => a.ip); } finally { kv.close(); }
}

async function plugin(host: string, command: string, netns: string, id: string, stdin: string) {
  const r = await runIn(host, bin, [], 20_000, stdin, env(command, netns, id));
  return { status: r.status, json: r.stdout ? JSON.parse(r.stdout) : undefined, stderr: r.stderr };
}

test.serial('before tetherd publishes the node subnet, ADD fails with code 11 naming the state file and creates nothing; once published, ADD puts the pod on it with the overlay MTU; CHECK passes; a second ADD is refused; DEL removes it', async (t) => {
  const host = ns.add('host');
  const ctr = ns.add('ctr');
  const stateFile = join(dir, 'vxlan.json');
  const linksBefore = Netlink.within(host, (before) => before.links().map((l) => l.name));
  const r = await plugin(host, 'ADD', ctr, 'c1', conf(stateFile));
  t.is(r.status, 1);
  t.is(r.json.code, 11);
  t.regex(r.json.msg, /tetherd has not published/);
  t.is(r.json.details, stateFile);
  Netlink.within(host, (after) => { t.deepEqual(after.links().map((l) => l.name), linksBefore, 'nothing created'); });
  writeNodeState(stateFile, { node: 'n1', network: 'x', pool: '10.245.0.0/16', subnet: '10.245.7.0/24', mtu: 1400, underlayIP: '198.18.0.1', vtepMAC: '0e:00:00:00:00:01', vni: 1, device: 'tether.1', updated: new Date().toISOString() });
  const ok = await plugin(host, 'ADD', ctr, 'c1', conf(stateFile));
  t.is(ok.status, 0, JSON.stringify(ok.json) + ok.stderr);
  t.regex(ok.json.ips[0].address, /^10\.245\.7\.\d+\/24$/);
  t.is(ok.json.ips[0].gateway, '10.245.7.1');
  t.true(ok.json.routes.some((x: { dst: string }) => x.dst === '10.245.0.0/16'), 'a route to the pool');
  Netlink.within(ctr, (c) => { t.is(c.linkByName('eth0')!.mtu, 1400, 'the pod gets the overlay MTU'); });
  const twice = await plugin(host, 'ADD', ctr, 'c1', conf(stateFile));
  t.is(twice.status, 1, 'a second ADD of the same attachment is refused');
  t.true(existsSync(join(dir, 'data', 'ovl', 'c1-eth0.json')), 'and the first one\'s record stays for its DEL');
  const chk = await runIn(host, bin, [], 20_000, JSON.stringify({ ...JSON.parse(conf(stateFile)), prevResult: ok.json }), env('CHECK', ctr, 'c1'));
  t.is(chk.status, 0, chk.stdout);
  t.deepEqual(await held(), [ok.json.ips[0].address.split('/')[0]], 'tether-ipam holds the pod\'s address in the node subnet');
  const del = await plugin(host, 'DEL', ctr, 'c1', conf(stateFile));
  t.is(del.status, 0, JSON.stringify(del.json));
  Netlink.within(ctr, (c2) => { t.is(c2.linkByName('eth0'), null); });
  const again = await plugin(host, 'DEL', ctr, 'c1', conf(stateFile));
  t.is(again.status, 0, 'DEL of what is gone succeeds');
  t.deepEqual(await held(), [], 'the address was released');
});
