import test from 'ava';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { runIn, startIn, stop, waitForLine } from '../../conformance/spawn.js';
import { Netlink } from '../../lib/netlink/handle.js';
import { formatCIDR } from '../../lib/ip/addr.js';
import { DIST, PodmanRig } from '../helpers/podman.js';

// A real runtime on tether: podman 4.3 with its CNI backend runs busybox containers on a tether-bridge
// network. Podman, its bridge and its containers live in throwaway namespaces; see test/helpers/podman.ts.

const rig = new PodmanRig();
const third = 100 + Math.floor(Math.random() * 100);
const subnet = `10.${third}.7.0/24`;
const gateway = `10.${third}.7.1`;
const subnet6 = `fd7e:${third.toString(16)}::/64`;
const net = rig.addNetwork({
  cniVersion: '1.0.0',
  name: `${rig.prefix}net`,
  plugins: [{
    type: 'tether-bridge',
    bridge: `${rig.prefix}br`,
    isDefaultGateway: true,
    ipMasq: true,
    log: { file: rig.logFile, level: 'info' },
    ipam: { type: 'tether-ipam', dataDir: rig.dataDir, ranges: [[{ subnet }], [{ subnet: subnet6 }]] },
  }],
});

test.after.always('podman containers, namespaces, storage and cache records are removed', (t) => {
  const problems = rig.cleanup();
  t.deepEqual(problems, []);
  t.deepEqual(rig.leftovers(), []);
  t.false(existsSync(rig.dir));
});

const cnictl = (...args: string[]) => runIn(rig.host, join(DIST, 'cnictl'), ['--conf-dir', rig.confDir, ...args], 20_000);

async function reservations(): Promise<{ ip: string; containerID: string }[]> {
  const r = await cnictl('ipam', 'ls', net, '--json');
  if (r.status !== 0) throw new Error(`cnictl ipam ls: ${r.stdout}${r.stderr}`);
  return JSON.parse(r.stdout).allocations;
}

/** The container's address on the network as podman reports it. */
async function podmanAddress(name: string): Promise<string> {
  return (await rig.inspect(name)).NetworkSettings.Networks[net].IPAddress;
}

test.serial('two dual-stack podman containers on tether-bridge reach each other, the gateway and the outside through ipMasq', async (t) => {
  await rig.run('a', net);
  await rig.run('b', net);
  const [a, b] = [await podmanAddress('a'), await podmanAddress('b')];
  t.regex(a, new RegExp(`^10\\.${third}\\.7\\.\\d+$`));
  t.not(a, b);
  const b6 = (await rig.inspect('b')).NetworkSettings.Networks[net].GlobalIPv6Address;
  t.true(b6.startsWith(`fd7e:${third.toString(16)}::`), b6);
  for (const [from, to] of [['a', b], ['b', a], ['a', gateway], ['a', b6]]) {
    const r = await rig.exec(from, `ping -c1 -W3 ${to}`);
    t.is(r.status, 0, `${from} -> ${to}: ${r.stdout}${r.stderr}`);
  }
  // The outside has no route back to the pods: an answer at all means masquerading, and the server
  // reports the source address it saw, which must be the node's.
  const server = startIn(rig.outside!.path, join(DIST, 'tether'), ['probe', 'serve', '--ip', rig.outside!.outsideIP, '--port', '7788', '--reply', 'peer', '--seconds', '30']);
  try {
    await waitForLine(server, 'ready', 10_000);
    const r = await rig.exec('a', `echo hello | nc -w 3 ${rig.outside!.outsideIP} 7788`);
    t.is(r.status, 0, r.stderr);
    t.is(r.stdout.trim(), `peer ${rig.outside!.hostIP}`);
  } finally { stop(server); }
});

test.serial('podman inspect, podman network inspect, the container interface and tether agree', async (t) => {
  const [netInfo] = JSON.parse(await rig.ok(['network', 'inspect', net]));
  t.is(netInfo.name, net);
  t.is(netInfo.driver, 'tether-bridge', 'podman names the driver after the first plugin of the list');
  const info = await rig.inspect('a');
  const p = info.NetworkSettings.Networks[net];
  // tether's own answer, as libcni cached it for podman.
  const cached = JSON.parse(readFileSync(rig.cacheRecord(net, info.Id), 'utf8'));
  const result = cached.result;
  const eth0 = result.interfaces.findIndex((i: any) => i.name === 'eth0' && i.sandbox);
  t.true(eth0 >= 0, 'the result names the container interface');
  t.is(result.interfaces[eth0].sandbox, info.NetworkSettings.SandboxKey);
  t.deepEqual(result.ips.map((i: any) => [i.address, i.gateway]), [[`${p.IPAddress}/${p.IPPrefixLen}`, p.Gateway], [`${p.GlobalIPv6Address}/${p.GlobalIPv6PrefixLen}`, p.IPv6Gateway]]);
  t.is(p.Gateway, gateway);
  t.is(result.interfaces[eth0].mac, p.MacAddress);
  // The kernel, seen from inside the container's namespace.
  Netlink.within(info.NetworkSettings.SandboxKey, (nl) => {
    const link = nl.linkByName('eth0')!;
    t.is(link.mac, p.MacAddress);
    t.deepEqual(nl.addrs({ family: 4, index: link.index }).map((x) => formatCIDR(x.cidr)), [`${p.IPAddress}/${p.IPPrefixLen}`]);
    const global6 = nl.addrs({ family: 6, index: link.index }).map((x) => formatCIDR(x.cidr)).filter((x) => !x.startsWith('fe80:'));
    t.deepEqual(global6, [`${p.GlobalIPv6Address}/${p.GlobalIPv6PrefixLen}`]);
  });
  // And tether-ipam, through the operator's tool.
  const held = (await reservations()).filter((r) => r.containerID === info.Id).map((r) => r.ip);
  t.deepEqual(held.sort(), [p.IPAddress, p.GlobalIPv6Address].sort());
});

test.serial('cnictl reads what podman set up: check passes on its cached result, status counts its attachments', async (t) => {
  const info = await rig.inspect('a');
  // libcni's cache (written by podman) is the one cnictl reads by default.
  const check = await cnictl('--cni-path', DIST, 'check', net, info.NetworkSettings.SandboxKey, '--container-id', info.Id);
  t.is(check.status, 0, check.stdout + check.stderr);
  t.regex(check.stdout, /: ok$/m);
  const s = JSON.parse((await cnictl('status', '--json', '--agent-state', join(rig.dir, 'no-agent.json'))).stdout);
  t.like(s.networks.find((n: any) => n.name === net), { plugins: ['tether-bridge'], attachments: 2, ipam: { rangeSets: [{ used: 2 }, { used: 2 }] } });
  t.deepEqual(s.attachments.filter((x: any) => x.network === net).map((x: any) => x.containerID).sort(), [info.Id, (await rig.inspect('b')).Id].sort());
});

test.serial('a restarted container gets a working network and still holds one address per family', async (t) => {
  const id = (await rig.inspect('b')).Id;
  await rig.ok(['restart', '-t', '0', 'b']);
  const b = await podmanAddress('b');
  const r = await rig.exec('b', `ping -c1 -W3 ${gateway} && ping -c1 -W3 ${await podmanAddress('a')}`);
  t.is(r.status, 0, `${r.stdout}${r.stderr}`);
  t.deepEqual((await reservations()).filter((x) => x.containerID === id && !x.ip.includes(':')).map((x) => x.ip), [b]);
  t.is((await reservations()).filter((x) => x.containerID === id).length, 2, 'one address per family');
});

const podmanIDs: string[] = [];

test.serial('podman rm leaves no address reserved and no cache record', async (t) => {
  const ids = [(await rig.inspect('a')).Id, (await rig.inspect('b')).Id];
  podmanIDs.push(...ids);
  t.is((await reservations()).length, 4);
  await rig.ok(['rm', '-f', '-t', '0', 'a', 'b']);
  t.deepEqual(await reservations(), []);
  for (const id of ids) t.false(existsSync(rig.cacheRecord(net, id)));
  // A container run again gets an address again (the range is not left poisoned).
  const out = await rig.runOnce(net, `ping -c1 -W3 ${gateway}`);
  t.regex(out, /1 packets received/);
  t.deepEqual(await reservations(), []);
});

test.serial('every CNI operation podman ran is one structured line in the log the config names', (t) => {
  const ops = readFileSync(rig.logFile, 'utf8').split('\n').filter(Boolean).map((l) => JSON.parse(l)).filter((l) => l.msg === 'operation');
  const [a, b] = podmanIDs;
  t.truthy(a && b, 'the rm test ran first');
  const of = (id: string) => ops.filter((o) => o.containerID === id);
  t.deepEqual(of(a).filter((o) => o.command === 'ADD').length, 1);
  t.deepEqual(of(b).filter((o) => o.command === 'ADD').length, 2, 'run, then restart');
  for (const id of [a, b]) {
    t.is(of(id).at(-1).command, 'DEL', 'podman rm ended with a DEL');
    for (const o of of(id)) t.like(o, { plugin: 'tether-bridge', network: net, ifname: 'eth0', result: 'ok' });
  }
  t.true(ops.every((o) => typeof o.duration_ms === 'number'));
});
