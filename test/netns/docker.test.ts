import test from 'ava';
import { DockerRig, IMAGE } from '../helpers/docker.js';
import { until } from '../helpers/wait.js';

// tether as Docker's network and IPAM driver, driven by a real dockerd 20.10 in its own namespaces
// (test/helpers/docker.ts). Every container, bridge and rule lives in the rig's namespace.

const rig = new DockerRig();
test.before(async () => { await rig.start(); await rig.startPlugin(); });
test.after.always(async () => { await rig.stop(); });

const run = (name: string, network: string, ...extra: string[]) => rig.ok('run', '-d', '--name', name, '--network', network, ...extra, IMAGE, 'sleep', '100000');
const exec = (name: string, ...cmd: string[]) => rig.docker(['exec', name, ...cmd]);
const ping = async (from: string, to: string, ...flags: string[]) => (await exec(from, 'ping', '-c', '1', '-W', '2', ...flags, to)).status === 0;
const addrOf = async (name: string, network: string) => rig.ok('inspect', '-f', `{{(index .NetworkSettings.Networks "${network}").IPAddress}}`, name);
const tetherLinks = () => rig.links().filter((l) => /^(tdh|tdc|tdk-)/.test(l));

test.serial('a tether network: containers reach each other by address and by name, the host, and the outside through masquerade; -o mtu; --ip sticky across restart and rm + run --ip', async (t) => {
  await rig.ok('network', 'create', '-d', 'tether', '--ipam-driver', 'tether', '--subnet', '10.88.0.0/16', '--ip-range', '10.88.7.0/24', '--gateway', '10.88.0.254', '-o', 'mtu=1400', 'n1');
  await run('a1', 'n1');
  await run('a2', 'n1', '--ip', '10.88.200.9');
  const a1 = await addrOf('a1', 'n1');
  t.regex(a1, /^10\.88\.7\.\d+$/, 'a dynamic address comes from --ip-range');
  t.is(await addrOf('a2', 'n1'), '10.88.200.9', '--ip outside the range, inside the subnet');
  t.true(await ping('a1', '10.88.200.9'), 'by address');
  t.true(await ping('a2', 'a1'), 'by name, through Docker\'s embedded DNS');
  t.true(await ping('a1', '10.88.0.254'), 'the host (the bridge\'s gateway address)');
  t.true(await ping('a1', rig.outside!.outsideIP), 'the outside, which has no route back: masqueraded');
  const route = (await exec('a1', 'ip', 'route')).stdout;
  t.regex(route, /default via 10\.88\.0\.254 dev eth0/);
  t.regex((await exec('a1', 'cat', '/sys/class/net/eth0/mtu')).stdout, /^1400/);
  await rig.ok('restart', 'a2');
  t.is(await addrOf('a2', 'n1'), '10.88.200.9', 'the same address after docker restart');
  t.true(await ping('a1', '10.88.200.9'));
  await rig.ok('rm', '-f', 'a2');
  await run('a2', 'n1', '--ip', '10.88.200.9');
  t.is(await addrOf('a2', 'n1'), '10.88.200.9', 'and after docker rm + run --ip');
  const taken = await rig.docker(['run', '-d', '--name', 'a3', '--network', 'n1', '--ip', '10.88.200.9', IMAGE, 'sleep', '1000']);
  t.not(taken.status, 0);
  t.regex(taken.stderr, /tether IPAM: 10\.88\.200\.9 is already in use on this network/);
  await rig.docker(['rm', '-f', 'a3']);
});

test.serial('--internal reaches its own network only; two networks on one host do not reach each other', async (t) => {
  await rig.ok('network', 'create', '-d', 'tether', '--ipam-driver', 'tether', '--subnet', '10.89.0.0/24', '--internal', 'n2');
  await run('b1', 'n2');
  await run('b2', 'n2');
  t.true(await ping('b1', 'b2'), 'inside the internal network');
  t.false(await ping('b1', rig.outside!.outsideIP), 'not the outside');
  t.notRegex((await exec('b1', 'ip', 'route')).stdout, /default/, 'no default route');
  const a1 = await addrOf('a1', 'n1');
  t.false(await ping('b1', a1), 'not another network');
  await rig.ok('network', 'create', '-d', 'tether', '--ipam-driver', 'tether', '--subnet', '10.90.0.0/24', 'n3');
  await run('c1', 'n3');
  t.false(await ping('c1', a1), 'n3 does not reach n1');
  t.false(await ping('a1', await addrOf('c1', 'n3')), 'n1 does not reach n3');
  t.true(await ping('c1', rig.outside!.outsideIP), 'but both reach the outside');
});

test.serial('docker network connect / disconnect on a running container', async (t) => {
  await rig.ok('network', 'connect', 'n3', 'a1');
  const onN3 = await addrOf('a1', 'n3');
  t.regex(onN3, /^10\.90\.0\.\d+$/);
  t.regex((await exec('a1', 'ip', '-4', 'addr')).stdout, new RegExp(`inet ${onN3.replaceAll('.', '\\.')}/24`));
  t.true(await ping('a1', 'c1'), 'a1 reaches c1 on the network it joined');
  const before = tetherLinks().length;
  await rig.ok('network', 'disconnect', 'n3', 'a1');
  t.notRegex((await exec('a1', 'ip', '-4', 'addr')).stdout, /10\.90\.0\./);
  t.is(tetherLinks().length, before - 1, 'the disconnected endpoint\'s veth is gone');
  t.false(await ping('a1', await addrOf('c1', 'n3')));
});

test.serial('--ipv6 with a v6 subnet: containers get both families and reach each other over IPv6', async (t) => {
  await rig.ok('network', 'create', '-d', 'tether', '--ipam-driver', 'tether', '--ipv6', '--subnet', '10.91.0.0/24', '--subnet', 'fd00:91::/64', 'n6');
  await run('d1', 'n6');
  await run('d2', 'n6');
  const v6 = await rig.ok('inspect', '-f', '{{(index .NetworkSettings.Networks "n6").GlobalIPv6Address}}', 'd2');
  t.regex(v6, /^fd00:91::/);
  await until('d1 to reach d2 over IPv6', async () => ping('d1', v6, '-6'), { ms: 30_000, every: 500 });
  t.true(await ping('d1', 'fd00:91::1', '-6'), 'the IPv6 gateway on the bridge');
  t.regex((await exec('d1', 'ip', '-6', 'route')).stdout, /default via fd00:91::1/);
});

test.serial('tetherd restarted under running containers: they keep their network, and new ones and removals work', async (t) => {
  await rig.stopPlugin();
  t.true(await ping('a1', '10.88.200.9'), 'the data path does not need the driver');
  await rig.startPlugin();
  await run('a4', 'n1');
  t.true(await ping('a4', 'a1'));
  await rig.ok('rm', '-f', 'a4');
});

test.serial('the driver down when dockerd calls: a clear error, and nothing changes', async (t) => {
  const links = tetherLinks().sort();
  await rig.stopPlugin();
  const r = await rig.docker(['run', '-d', '--name', 'x1', '--network', 'n1', IMAGE, 'sleep', '1000'], 180_000);
  t.not(r.status, 0);
  t.regex(r.stderr, /tether|plugin|connect/i);
  t.log(r.stderr.trim());
  t.deepEqual(tetherLinks().sort(), links);
  await rig.docker(['rm', '-f', 'x1']);
  await rig.startPlugin();
});

test.serial('docker rm -f of 50 containers at once, then every network removed: nothing is left', async (t) => {
  const ids: string[] = [];
  for (let i = 0; i < 50; i++) ids.push(await run(`m${i}`, 'n3'));
  const results = await Promise.all(ids.map((id) => rig.docker(['rm', '-f', id])));
  t.deepEqual(results.filter((r) => r.status !== 0).map((r) => r.stderr), []);
  const left = (await rig.ok('ps', '-aq')).split('\n').filter(Boolean);
  // What Docker still has: each remaining container's endpoints have a veth, and nothing else does.
  const endpoints = (await rig.ok('network', 'inspect', '-f', '{{range $k, $v := .Containers}}{{$v.EndpointID}} {{end}}', 'n1', 'n2', 'n3', 'n6')).split(/\s+/).filter(Boolean);
  t.is(tetherLinks().filter((l) => l.startsWith('tdh')).length, endpoints.length);
  await rig.ok('rm', '-f', ...left);
  for (const n of ['n1', 'n2', 'n3', 'n6']) await rig.ok('network', 'rm', n);
  t.deepEqual(tetherLinks(), [], 'no bridge or veth');
  const nft = await rig.inNs('nft', ['list', 'tables']);
  t.notRegex(nft.stdout, /tether/, 'no masquerade table, no isolation table');
  const { DriverState } = await import('../../docker/state.js');
  const st = new DriverState(rig.stateDir);
  t.deepEqual([await st.networks(), await st.endpoints(), await st.pools()], [[], [], []], 'no record, no pool');
});
