import test, { type ExecutionContext } from 'ava';
import type { ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { parseNetworkList, type NetworkList } from '../../lib/libcni/conf.js';
import { PluginFailure } from '../../lib/libcni/runtime.js';
import { Lab, type Container } from '../../conformance/lab.js';
import { runIn, startIn, stop, waitForLine } from '../../conformance/spawn.js';
import { diffSnapshots, snapshot } from '../../conformance/kernel.js';
import { AF_INET, NETLINK_NETFILTER } from '../../lib/netlink/constants.js';
import { conntrackList } from '../../lib/netlink/conntrack.js';
import { Netlink } from '../../lib/netlink/handle.js';
import { NetlinkSocket } from '../../lib/netlink/socket.js';
import { inNetns } from '../../lib/netns/netns.js';
import { until } from '../helpers/wait.js';
import { listPortMappings, removePortMappings } from '../../lib/portmap/index.js';

// Published ports (portMappings capability) end to end, in throwaway namespaces: a "host" where the
// plugins run, containers on its bridge, and an "outside" namespace across a veth as another host.
const dist = fileURLToPath(new URL('../../../dist/bin/', import.meta.url));
const tether = `${dist}tether`;
const labs: Lab[] = [];
const servers: ChildProcess[] = [];
test.after.always(() => { for (const s of servers) stop(s); for (const l of labs) l.close(); });

function bridgeNetwork(name: string, subnet4: string, subnet6: string, extra: Record<string, unknown> = {}): NetworkList {
  return parseNetworkList(Buffer.from(JSON.stringify({
    cniVersion: '1.1.0', name, plugins: [{
      type: 'tether-bridge', bridge: `b${name}`.slice(0, 15), isDefaultGateway: true, ipMasq: true, capabilities: { portMappings: true },
      ipam: { type: 'tether-ipam', ranges: [[{ subnet: subnet4 }], [{ subnet: subnet6 }]] }, ...extra,
    }],
  })));
}

async function attachWithPorts(l: Lab, c: Container, portMappings: unknown[], list = l.list) {
  return l.runtime.add(list, { ...l.spec(c), capabilityArgs: { portMappings } });
}

/** An echo server (TCP and UDP on one port) in a namespace, listening on every address of both families. */
async function serve(ns: string, port: number): Promise<void> {
  const s = startIn(ns, tether, ['probe', 'serve', '--ip', '::', '--port', String(port), '--seconds', '300']);
  servers.push(s);
  await waitForLine(s, 'ready', 20_000);
}

/** One probe from `ns`: "ok ..." or "fail <why>". The deadline only bounds a failure; success is an echo. */
async function probe(ns: string, proto: 'tcp' | 'udp', ip: string, port: number): Promise<string> {
  const r = await runIn(ns, tether, ['probe', 'connect', '--proto', proto, '--ip', ip, '--port', String(port), '--timeout-ms', '8000'], 20_000);
  return r.stdout.trim() || `fail (exit ${r.status}) ${r.stderr.trim()}`;
}

/** The bookkeeping sets of the ports table (ledger, claims), as nft lists them: what DEL and a refused ADD must leave as they found. */
async function bookkeeping(host: string): Promise<string> {
  const r = await Promise.all(['owners', 'claims4', 'claims6'].map((set) => runIn(host, '/usr/sbin/nft', ['list', 'set', 'inet', 'tether_ports', set])));
  return r.map((x) => x.stdout.split('\n').filter((line) => !/^\s*(table|set|type|\})/.test(line)).join('\n')).join('\n');
}

/** An ADD that must fail with code 7 matching `re` and leave the host as it found it: interfaces, addresses, routes, IPAM, map elements, ledger and claims. */
async function refusedCleanly(t: ExecutionContext, l: Lab, c: Container, mappings: unknown[], re: RegExp): Promise<void> {
  const before = snapshot(l.host);
  const reserved = await l.reservations();
  const elements = inNetns(l.host, () => listPortMappings());
  const books = await bookkeeping(l.host);
  const e = await t.throwsAsync(attachWithPorts(l, c, mappings), { instanceOf: PluginFailure });
  t.is(e!.code, 7);
  t.regex(e!.message, re);
  t.deepEqual(diffSnapshots(before, snapshot(l.host)), [], 'no veth, address or route left');
  t.deepEqual(await l.reservations(), reserved, 'the address was released');
  t.deepEqual(inNetns(l.host, () => listPortMappings()), elements, 'no element added (not even for a free port of the request)');
  t.is(await bookkeeping(l.host), books, 'no ledger entry or claim added');
}

const ownedBy = (host: string, containerID: string) => inNetns(host, () => listPortMappings()).filter((m) => m.owner.containerID === containerID);

test('a published port answers from another host, the host itself (its addresses, 127.0.0.1), another pod and the pod itself; DEL removes it', async (t) => {
  const l = new Lab(bridgeNetwork('pmreach', '10.81.0.0/24', 'fd00:81::/64'), [dist, '/usr/lib/cni']);
  labs.push(l);
  const out = l.newOutside();
  const a = l.newContainer();
  const b = l.newContainer();
  await attachWithPorts(l, a, [{ hostPort: 8080, containerPort: 80, protocol: 'tcp' }, { hostPort: 8080, containerPort: 80, protocol: 'udp' }]);
  await l.attach(b);
  await serve(a.path, 80);
  const cases: [string, string, string][] = [
    ['another host, IPv4', out.path, out.hostIP],
    ['another host, IPv6', out.path, out.hostIP6],
    ['the host on its address', l.host, out.hostIP],
    ['the host on 127.0.0.1', l.host, '127.0.0.1'],
    ['another pod on the node', b.path, out.hostIP],
    ['another pod on the node, IPv6', b.path, out.hostIP6],
    ['the pod itself (hairpin)', a.path, out.hostIP],
    ['the host on its IPv6 address', l.host, out.hostIP6],
    ['the pod itself (hairpin), IPv6', a.path, out.hostIP6],
  ];
  for (const [what, ns, ip] of cases) {
    for (const proto of ['tcp', 'udp'] as const) t.regex(await probe(ns, proto, ip, 8080), /^ok /, `${what} over ${proto}`);
  }
  t.is(ownedBy(l.host, a.id).length, 4, 'tcp and udp, IPv4 and IPv6: four elements');
  t.regex(await bookkeeping(l.host), new RegExp(a.id), 'a ledger entry names the pod');
  await l.detach(a);
  t.deepEqual(ownedBy(l.host, a.id), [], 'DEL removed every element of the pod');
  t.notRegex(await bookkeeping(l.host), /elements/, 'and its ledger entry and claims');
  t.regex(await probe(out.path, 'tcp', out.hostIP, 8080), /^fail .*ECONNREFUSED/, 'after DEL the port is closed (the host itself refuses)');
  await l.detach(a); // DEL again: nothing left to do, still succeeds
});

test('hostIP publishes on that address only (IPv4 and IPv6); "0.0.0.0" and "::" on one family only', async (t) => {
  const l = new Lab(bridgeNetwork('pmhostip', '10.82.0.0/24', 'fd00:82::/64'), [dist, '/usr/lib/cni']);
  labs.push(l);
  const out = l.newOutside();
  const a = l.newContainer();
  await attachWithPorts(l, a, [
    { hostPort: 9090, containerPort: 80, hostIP: out.hostIP }, { hostPort: 9091, containerPort: 80, hostIP: out.hostIP6 },
    { hostPort: 9092, containerPort: 80, hostIP: '0.0.0.0' }, { hostPort: 9093, containerPort: 80, hostIP: '::' },
  ]);
  await serve(a.path, 80);
  t.regex(await probe(out.path, 'tcp', out.hostIP, 9090), /^ok /, 'on the hostIP');
  t.regex(await probe(l.host, 'tcp', '127.0.0.1', 9090), /^fail .*ECONNREFUSED/, 'not on 127.0.0.1');
  t.regex(await probe(l.host, 'tcp', '10.82.0.1', 9090), /^fail .*ECONNREFUSED/, 'not on the bridge address');
  t.regex(await probe(out.path, 'tcp', out.hostIP6, 9090), /^fail .*ECONNREFUSED/, 'not on the IPv6 address');
  t.regex(await probe(out.path, 'tcp', out.hostIP6, 9091), /^ok /, 'on the IPv6 hostIP');
  t.regex(await probe(l.host, 'tcp', 'fd00:82::1', 9091), /^fail .*ECONNREFUSED/, 'not on the bridge\'s IPv6 address');
  t.regex(await probe(out.path, 'tcp', out.hostIP, 9091), /^fail .*ECONNREFUSED/, 'not on the IPv4 address');
  t.regex(await probe(out.path, 'tcp', out.hostIP, 9092), /^ok /, '"0.0.0.0" on IPv4');
  t.regex(await probe(out.path, 'tcp', out.hostIP6, 9092), /^fail .*ECONNREFUSED/, '"0.0.0.0" not on IPv6');
  t.regex(await probe(out.path, 'tcp', out.hostIP6, 9093), /^ok /, '"::" on IPv6');
  t.regex(await probe(l.host, 'tcp', out.hostIP6, 9093), /^ok /, '"::" from the host itself, IPv6');
  t.regex(await probe(a.path, 'tcp', out.hostIP6, 9093), /^ok /, '"::" hairpin, IPv6');
  t.regex(await probe(out.path, 'tcp', out.hostIP, 9093), /^fail .*ECONNREFUSED/, '"::" not on IPv4');
});

test('a port on every address and the same port on one address cannot coexist: code 7 naming the owner, either order, nothing left behind', async (t) => {
  const l = new Lab(bridgeNetwork('pmover', '10.88.0.0/24', 'fd00:88::/64'), [dist, '/usr/lib/cni']);
  labs.push(l);
  const out = l.newOutside();
  const a = l.newContainer();
  await attachWithPorts(l, a, [{ hostPort: 8443, containerPort: 443 }]);
  // hostIP after a wildcard of the same port.
  const b = l.newContainer();
  await refusedCleanly(t, l, b, [{ hostPort: 8443, containerPort: 443, hostIP: out.hostIP }],
    new RegExp(`8443/tcp on ${out.hostIP} \\(IPv4\\) overlaps 8443/tcp on every IPv4 host address, published by container ${a.id} \\(interface eth0, network pmover\\)`));
  // A wildcard after a hostIP of the same port (IPv6 this time).
  const c = l.newContainer();
  await attachWithPorts(l, c, [{ hostPort: 9443, containerPort: 443, hostIP: out.hostIP6 }]);
  const d = l.newContainer();
  await refusedCleanly(t, l, d, [{ hostPort: 9443, containerPort: 443, hostIP: '::' }],
    new RegExp(`9443/tcp on every IPv6 host address \\(IPv6\\) overlaps 9443/tcp on ${out.hostIP6}, published by container ${c.id}`));
  // Two hostIP mappings of one port on different addresses are fine; an IPv4 wildcard does not meet an IPv6 hostIP.
  const e = l.newContainer();
  await t.notThrowsAsync(attachWithPorts(l, e, [{ hostPort: 9443, containerPort: 443, hostIP: '10.88.0.1' }, { hostPort: 9443, containerPort: 443, hostIP: '0.0.0.0', protocol: 'udp' }]));
  await refusedCleanly(t, l, l.newContainer(), [{ hostPort: 9443, containerPort: 443, hostIP: '0.0.0.0' }], new RegExp(`9443/tcp on every IPv4 host address \\(IPv4\\) overlaps 9443/tcp on 10.88.0.1, published by container ${e.id}`));
  // Same request: refused before anything is made.
  const f = l.newContainer();
  await refusedCleanly(t, l, f, [{ hostPort: 7443, containerPort: 443 }, { hostPort: 7443, containerPort: 443, hostIP: out.hostIP }], /portMappings\[1\]: publishes 7443\/tcp on .*, which overlaps entry 0/);
  // Once every hostIP mapping of the port is gone, a wildcard may have it (the shared claim left behind is cleared).
  await l.detach(c);
  await l.detach(e);
  await t.notThrowsAsync(attachWithPorts(l, d, [{ hostPort: 9443, containerPort: 443, hostIP: '::' }]));
  await serve(d.path, 443);
  t.regex(await probe(out.path, 'tcp', out.hostIP6, 9443), /^ok /, 'd serves 9443 on IPv6');
});

test('a second container asking for a taken host port fails naming the owner, and leaves nothing behind', async (t) => {
  const l = new Lab(bridgeNetwork('pmdup', '10.83.0.0/24', 'fd00:83::/64'), [dist, '/usr/lib/cni']);
  labs.push(l);
  const a = l.newContainer();
  await attachWithPorts(l, a, [{ hostPort: 8443, containerPort: 443 }]);
  const b = l.newContainer();
  await refusedCleanly(t, l, b, [{ hostPort: 7000, containerPort: 70 }, { hostPort: 8443, containerPort: 443 }], new RegExp(`8443/tcp .* already published by container ${a.id} \\(interface eth0, network pmdup\\)`));
  // The failed container's DEL (a runtime cleans up) must not take the owner's port away.
  await l.detach(b);
  t.is(ownedBy(l.host, a.id).length, 2);
  // A refused entry: code 7 naming the field.
  const c = l.newContainer();
  const bad = await t.throwsAsync(attachWithPorts(l, c, [{ hostPort: 70000, containerPort: 70 }]), { instanceOf: PluginFailure });
  t.is(bad!.code, 7);
  t.regex(bad!.message, /portMappings\[0\]\.hostPort: must be a port number from 1 to 65535/);
});

test('CHECK verifies the published ports; GC removes those of attachments no longer valid and keeps the valid ones', async (t) => {
  const l = new Lab(bridgeNetwork('pmcheck', '10.84.0.0/24', 'fd00:84::/64'), [dist, '/usr/lib/cni']);
  labs.push(l);
  const out = l.newOutside();
  const a = l.newContainer();
  const b = l.newContainer();
  const spec = (c: Container, port: number) => ({ ...l.spec(c), capabilityArgs: { portMappings: [{ hostPort: port, containerPort: 80 }] } });
  await l.runtime.add(l.list, spec(a, 8001));
  await l.runtime.add(l.list, spec(b, 8002));
  await t.notThrowsAsync(l.runtime.check(l.list, spec(a, 8001)));
  // A CHECK asking for a port the pod never published fails naming it (nothing removed by hand).
  const e = await t.throwsAsync(l.runtime.check(l.list, spec(a, 8009)), { instanceOf: PluginFailure });
  t.is(e!.code, 100);
  t.regex(e!.message, /8009\/tcp on every host address \(IPv4\) is not published/);
  const aBefore = ownedBy(l.host, a.id);
  t.is(aBefore.length, 2, 'a has its two elements before GC');
  await l.runtime.gc(l.list, [l.spec(a)]);
  t.deepEqual(ownedBy(l.host, b.id), [], 'GC removed the mappings of b, not in the valid list');
  t.deepEqual(ownedBy(l.host, a.id), aBefore, 'GC kept every element of a, which is valid');
  await t.notThrowsAsync(l.runtime.check(l.list, spec(a, 8001)), 'a still passes CHECK after GC');
  await serve(a.path, 80);
  t.regex(await probe(out.path, 'tcp', out.hostIP, 8001), /^ok /, 'and a still answers');
  t.regex(await probe(out.path, 'tcp', out.hostIP, 8002), /^fail .*ECONNREFUSED/, 'b does not');
});

test('a UDP host port given up and published again: the ADD deletes the flows still going to the old container', async (t) => {
  const l = new Lab(bridgeNetwork('pmct', '10.85.0.0/24', 'fd00:85::/64'), [dist, '/usr/lib/cni']);
  labs.push(l);
  const out = l.newOutside();
  const a = l.newContainer();
  await attachWithPorts(l, a, [{ hostPort: 5300, containerPort: 53, protocol: 'udp' }]);
  await serve(a.path, 53);
  const flows = () => inNetns(l.host, () => NetlinkSocket.within(NETLINK_NETFILTER, (s) => conntrackList(s, AF_INET, 17)))
    .filter((e) => e.dport === 5300);
  // A client talks to a; its flow stays tracked (and DNATed to a's address) while the client keeps sending.
  t.regex(await probe(out.path, 'udp', out.hostIP, 5300), /^ok /, 'a answers');
  t.true(flows().length > 0, 'the flow is tracked');
  // ...a goes away, b takes the port over. Without the flush, the tracked flow would still lead to a's address.
  await l.detach(a);
  t.true(flows().length > 0, 'the flow outlives a');
  const b = l.newContainer();
  await attachWithPorts(l, b, [{ hostPort: 5300, containerPort: 53, protocol: 'udp' }]);
  t.deepEqual(flows(), [], 'the ADD of b deleted it');
  await serve(b.path, 53);
  t.regex(await probe(out.path, 'udp', out.hostIP, 5300), /^ok /, 'b answers');
});

test('tether-portmap chained after the reference bridge publishes from prevResult', async (t) => {
  const list = parseNetworkList(Buffer.from(JSON.stringify({
    cniVersion: '1.0.0', name: 'pmchain', plugins: [
      { type: 'bridge', bridge: 'bpmchain', isDefaultGateway: true, ipMasq: false, ipam: { type: 'host-local', ranges: [[{ subnet: '10.86.0.0/24' }]] } },
      { type: 'tether-portmap', capabilities: { portMappings: true } },
    ],
  })));
  const l = new Lab(list, [dist, '/usr/lib/cni']);
  labs.push(l);
  const out = l.newOutside();
  const a = l.newContainer();
  await attachWithPorts(l, a, [{ hostPort: 8080, containerPort: 80 }]);
  await serve(a.path, 80);
  t.regex(await probe(out.path, 'tcp', out.hostIP, 8080), /^ok /, 'from another host');
  t.regex(await probe(l.host, 'tcp', '127.0.0.1', 8080), /^ok /, 'from the host on 127.0.0.1');
  t.regex(await probe(a.path, 'tcp', out.hostIP, 8080), /^ok /, 'hairpin');
  await l.detach(a);
  t.deepEqual(ownedBy(l.host, a.id), []);
});

test('host firewall: an inet filter input policy of drop does not see published ports; a forward rule on ct status dnat does', async (t) => {
  const l = new Lab(bridgeNetwork('pmfw', '10.87.0.0/24', 'fd00:87::/64'), [dist, '/usr/lib/cni']);
  labs.push(l);
  const out = l.newOutside();
  const a = l.newContainer();
  await attachWithPorts(l, a, [{ hostPort: 8080, containerPort: 80 }]);
  await serve(a.path, 80);
  const nft = (script: string) => runIn(l.host, '/usr/sbin/nft', ['-f', '-'], 10_000, script);
  // A host that accepts nothing addressed to itself (but what it asked for): DNATed traffic is not addressed to it any more.
  t.is((await nft('table inet filter {\n  chain input {\n    type filter hook input priority filter; policy drop;\n    tcp dport 8080 counter\n    tcp dport 22 counter\n    ct state established,related accept\n    iif lo accept\n  }\n}\n')).status, 0);
  t.regex(await probe(out.path, 'tcp', out.hostIP, 8080), /^ok /, 'the input policy does not stop a published port');
  t.regex(await probe(out.path, 'tcp', out.hostIP, 22), /^fail /, 'while it does stop a port of the host itself');
  const input = (await runIn(l.host, '/usr/sbin/nft', ['list', 'chain', 'inet', 'filter', 'input'])).stdout;
  t.regex(input, /tcp dport 8080 counter packets 0 /, 'the input hook never saw the published port\'s packets');
  t.regex(input, /tcp dport 22 counter packets [1-9]/, 'it saw (and dropped) the host port\'s');
  // The operator's control: the forward hook, matching what the connection was addressed to before DNAT.
  t.is((await nft(`add chain inet filter forward { type filter hook forward priority filter; policy accept; }\nadd rule inet filter forward meta l4proto tcp ct status dnat ct original proto-dst 8080 ip saddr ${out.outsideIP} counter reject\n`)).status, 0);
  t.regex(await probe(out.path, 'tcp', out.hostIP, 8080), /^fail /, 'a forward rule on ct original proto-dst stops it');
  const listed = await runIn(l.host, '/usr/sbin/nft', ['list', 'chain', 'inet', 'filter', 'forward']);
  t.regex(listed.stdout, /counter packets [1-9]/, 'and it was that rule');
  t.regex(await probe(l.host, 'tcp', '127.0.0.1', 8080), /^ok /, 'the host itself (output path) is not affected by either');
});

test('tether-bgp-route publishes in its own exec: another host, the host on 127.0.0.1, another pod, hairpin', async (t) => {
  const list = parseNetworkList(Buffer.from(JSON.stringify({
    cniVersion: '1.1.0', name: 'pmbgp',
    plugins: [{ type: 'tether-bgp-route', capabilities: { portMappings: true }, ipam: { type: 'tether-ipam', ranges: [[{ subnet: '10.89.0.0/24' }]] } }],
  })));
  const l = new Lab(list, [dist, '/usr/lib/cni']);
  labs.push(l);
  const out = l.newOutside();
  const a = l.newContainer();
  const b = l.newContainer();
  await attachWithPorts(l, a, [{ hostPort: 8080, containerPort: 80 }, { hostPort: 8080, containerPort: 80, protocol: 'udp' }]);
  await l.attach(b);
  await serve(a.path, 80);
  for (const [what, ns, ip] of [['another host', out.path, out.hostIP], ['the host on 127.0.0.1', l.host, '127.0.0.1'], ['another pod', b.path, out.hostIP], ['hairpin', a.path, out.hostIP]] as const) {
    for (const proto of ['tcp', 'udp'] as const) t.regex(await probe(ns, proto, ip, 8080), /^ok /, `${what} over ${proto}`);
  }
  await l.detach(a);
  t.deepEqual(ownedBy(l.host, a.id), []);
});

test('tether-vxlan publishes in its own exec (through the bridge it runs in-process): the host reaches the pod on 127.0.0.1; DEL unpublishes', async (t) => {
  const { Namespaces } = await import('../helpers/netns.js');
  const { writeNodeState } = await import('../../lib/node-state.js');
  const { mkdtempSync, rmSync } = await import('node:fs');
  const { tmpdir } = await import('node:os');
  const { join } = await import('node:path');
  const ns = new Namespaces('tpv');
  const dir = mkdtempSync(join(tmpdir(), 'tpv-'));
  try {
    const host = ns.add('host');
    const ctr = ns.add('ctr');
    Netlink.within(host, (nl) => nl.linkSet(nl.linkByName('lo')!.index, { up: true }));
    Netlink.within(ctr, (nl) => nl.linkSet(nl.linkByName('lo')!.index, { up: true }));
    const stateFile = join(dir, 'vxlan.json');
    writeNodeState(stateFile, { node: 'n1', network: 'x', pool: '10.246.0.0/16', subnet: '10.246.7.0/24', mtu: 1400, underlayIP: '198.18.0.1', vtepMAC: '0e:00:00:00:00:01', vni: 1, device: 'tether.1', updated: new Date().toISOString() });
    const conf = { cniVersion: '1.0.0', name: 'ovlports', type: 'tether-vxlan', stateFile, dataDir: join(dir, 'data'), runtimeConfig: { portMappings: [{ hostPort: 8080, containerPort: 80 }] } };
    const env = (command: string) => ({ PATH: '/usr/bin:/bin', CNI_COMMAND: command, CNI_CONTAINERID: 'v1', CNI_NETNS: ctr, CNI_IFNAME: 'eth0', CNI_PATH: dist });
    const add = await runIn(host, `${dist}tether-vxlan`, [], 20_000, JSON.stringify(conf), env('ADD'));
    t.is(add.status, 0, add.stdout);
    t.deepEqual(ownedBy(host, 'v1').map((m) => [m.hostPort, m.containerPort]), [[8080, 80]]);
    await serve(ctr, 80);
    t.regex(await probe(host, 'tcp', '127.0.0.1', 8080), /^ok /, 'the host on 127.0.0.1');
    const del = await runIn(host, `${dist}tether-vxlan`, [], 20_000, JSON.stringify(conf), env('DEL'));
    t.is(del.status, 0, del.stdout);
    t.deepEqual(ownedBy(host, 'v1'), []);
  } finally { ns.cleanup(); rmSync(dir, { recursive: true, force: true }); }
});

test('[::1]: tetherd\'s proxy serves a published port (unset hostIP, "::", "::1"), not an IPv4-only one, and stops after DEL', async (t) => {
  const l = new Lab(bridgeNetwork('pmlo6', '10.90.0.0/24', 'fd00:90::/64'), [dist, '/usr/lib/cni']);
  labs.push(l);
  const out = l.newOutside();
  const proxy = startIn(l.host, `${dist}tetherd`, ['ports-proxy', '--interval-ms', '200']);
  servers.push(proxy);
  await waitForLine(proxy, 'tetherd: ready', 20_000);
  const a = l.newContainer();
  await attachWithPorts(l, a, [
    { hostPort: 8080, containerPort: 80 }, { hostPort: 8080, containerPort: 80, protocol: 'udp' },
    { hostPort: 8081, containerPort: 80, hostIP: '::' }, { hostPort: 8082, containerPort: 80, hostIP: '::1' },
    { hostPort: 8083, containerPort: 80, hostIP: '0.0.0.0' },
  ]);
  await serve(a.path, 80);
  const answers = async (proto: 'tcp' | 'udp', port: number) => /^ok /.test(await probe(l.host, proto, '::1', port));
  for (const [proto, port] of [['tcp', 8080], ['udp', 8080], ['tcp', 8081], ['tcp', 8082]] as const) {
    await until(`[::1]:${port}/${proto} answers`, () => answers(proto, port), { ms: 10_000, every: 100 });
    t.pass(`[::1]:${port}/${proto} answers`);
  }
  t.regex(await probe(l.host, 'tcp', '::1', 8083), /^fail .*ECONNREFUSED/, '"0.0.0.0" is IPv4 only: not on [::1]');
  t.regex(await probe(out.path, 'tcp', out.hostIP6, 8080), /^ok /, 'the kernel still serves the host\'s own IPv6 address');
  t.regex(await probe(out.path, 'tcp', out.hostIP6, 8082), /^fail .*ECONNREFUSED/, 'a "::1" mapping is on ::1 only');
  await l.detach(a);
  await until('[::1]:8080 closed after DEL', async () => /ECONNREFUSED/.test(await probe(l.host, 'tcp', '::1', 8080)), { ms: 10_000, every: 100 });
  t.regex(await probe(l.host, 'tcp', '::1', 8082), /^fail .*ECONNREFUSED/, 'every listener went with the DEL');
});

test('sctp: a published SCTP port is DNATed to the container\'s address and port (a raw INIT: this kernel has no SCTP sockets); DEL removes it', async (t) => {
  const { sctpListener, sendSctpInit } = await import('../helpers/sctp-raw.js');
  const l = new Lab(bridgeNetwork('pmsctp', '10.79.0.0/24', 'fd00:79::/64'), [dist, '/usr/lib/cni']);
  labs.push(l);
  const out = l.newOutside();
  const a = l.newContainer();
  const r = await attachWithPorts(l, a, [{ hostPort: 3868, containerPort: 3869, protocol: 'sctp' }]);
  const podIP = r.ips!.find((i) => !i.address.includes(':'))!.address.split('/')[0];
  t.deepEqual(ownedBy(l.host, a.id).map((m) => m.protocol), ['sctp', 'sctp'], 'one element per family');
  const seen = sctpListener(a.path);
  try {
    let got: { dst: string; dport: number } | null = null;
    await until('the INIT reaches the pod', () => {
      sendSctpInit(out.path, out.hostIP, 3868);
      got = seen.next(200);
      return got;
    }, { ms: 10_000, every: 50 });
    t.deepEqual(got, { dst: podIP, dport: 3869 }, 'addressed to the pod\'s address and containerPort');
  } finally { seen.close(); }
  await l.detach(a);
  t.deepEqual(ownedBy(l.host, a.id), [], 'DEL removed both');
});

test('DEL of a pod with more mappings than its ledger comment holds scans the maps instead, and removes exactly its own', async (t) => {
  const l = new Lab(bridgeNetwork('pmmany', '10.78.0.0/24', 'fd00:78::/64'), [dist, '/usr/lib/cni']);
  labs.push(l);
  const a = l.newContainer();
  const b = l.newContainer();
  await attachWithPorts(l, a, Array.from({ length: 20 }, (_, i) => ({ hostPort: 30000 + i, containerPort: 80 })));
  await attachWithPorts(l, b, [{ hostPort: 31000, containerPort: 80 }]);
  t.regex(await bookkeeping(l.host), new RegExp(`${a.id} eth0\\|\\*`), 'a\'s ledger says "*": 40 elements do not fit a comment');
  t.is(ownedBy(l.host, a.id).length, 40);
  await l.detach(a);
  t.deepEqual(ownedBy(l.host, a.id), [], 'DEL removed all 40');
  t.is(ownedBy(l.host, b.id).length, 2, 'and none of b\'s');
  t.notRegex(await bookkeeping(l.host), new RegExp(a.id), 'nor left a\'s ledger or claims');
});

test('the ports functions stay in the namespace they are called in (a nested namespace switch once sent the rest of an ADD home)', async (t) => {
  const { readlinkSync } = await import('node:fs');
  const { addPortMappings, parsePortMappings } = await import('../../lib/portmap/index.js');
  const { parseCIDR } = await import('../../lib/ip/addr.js');
  const l = new Lab(bridgeNetwork('pmnest', '10.77.0.0/24', 'fd00:77::/64'), [dist, '/usr/lib/cni']);
  labs.push(l);
  const owner = { network: 'pmnest', containerID: 'nest1', ifname: 'eth0' };
  const [ns, after] = inNetns(l.host, () => {
    const here = readlinkSync('/proc/thread-self/ns/net');
    addPortMappings({ owner, addresses: [parseCIDR('10.77.0.9/24')!], hostInterfaces: ['lo'] }, parsePortMappings([{ hostPort: 8080, containerPort: 80 }]));
    return [here, readlinkSync('/proc/thread-self/ns/net')];
  });
  t.is(after, ns, 'still in the lab\'s host namespace after the ADD');
  t.is(ownedBy(l.host, 'nest1').length, 1);
  t.is(inNetns(l.host, () => removePortMappings(owner)), 1);
});

test('addPortMappings again for the same owner with one more mapping (a retried publish): the ledger grows to name it, so DEL removes all', async (t) => {
  const { addPortMappings, parsePortMappings } = await import('../../lib/portmap/index.js');
  const { parseCIDR } = await import('../../lib/ip/addr.js');
  const l = new Lab(bridgeNetwork('pmretry', '10.76.0.0/24', 'fd00:76::/64'), [dist, '/usr/lib/cni']);
  labs.push(l);
  const owner = { network: 'pmretry', containerID: 'retry1', ifname: 'eth0' };
  const target = { owner, addresses: [parseCIDR('10.76.0.9/24')!, parseCIDR('fd00:76::9/64')!], hostInterfaces: [] };
  inNetns(l.host, () => addPortMappings(target, parsePortMappings([{ hostPort: 8080, containerPort: 80 }])));
  inNetns(l.host, () => addPortMappings(target, parsePortMappings([{ hostPort: 8080, containerPort: 80 }, { hostPort: 8081, containerPort: 81 }])));
  t.deepEqual(ownedBy(l.host, 'retry1').map((m) => m.hostPort).sort(), [8080, 8080, 8081, 8081]);
  t.regex(await bookkeeping(l.host), /w4\/tcp\/8080 w6\/tcp\/8080 w4\/tcp\/8081 w6\/tcp\/8081/, 'one ledger naming all four');
  t.is(inNetns(l.host, () => removePortMappings(owner)), 4);
  t.deepEqual(ownedBy(l.host, 'retry1'), []);
  t.notRegex(await bookkeeping(l.host), /elements/);
});
