import test from 'ava';
import type { ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { parseNetworkList, type NetworkList } from '../../cnictl/conf.js';
import { PluginFailure } from '../../cnictl/runtime.js';
import { Lab, type Container } from '../../conformance/lab.js';
import { runIn, startIn, stop, waitForLine } from '../../conformance/spawn.js';
import { diffSnapshots, snapshot } from '../../conformance/kernel.js';
import { AF_INET, NETLINK_NETFILTER } from '../../lib/netlink/constants.js';
import { conntrackList } from '../../lib/netlink/conntrack.js';
import { NetlinkSocket } from '../../lib/netlink/socket.js';
import { inNetns } from '../../lib/netns/netns.js';
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
  ];
  for (const [what, ns, ip] of cases) {
    for (const proto of ['tcp', 'udp'] as const) t.regex(await probe(ns, proto, ip, 8080), /^ok /, `${what} over ${proto}`);
  }
  t.is(ownedBy(l.host, a.id).length, 4, 'tcp and udp, IPv4 and IPv6: four elements');
  await l.detach(a);
  t.deepEqual(ownedBy(l.host, a.id), [], 'DEL removed every element of the pod');
  t.regex(await probe(out.path, 'tcp', out.hostIP, 8080), /^fail .*ECONNREFUSED/, 'after DEL the port is closed (the host itself refuses)');
  await l.detach(a); // DEL again: nothing left to do, still succeeds
});

test('hostIP publishes on that address only', async (t) => {
  const l = new Lab(bridgeNetwork('pmhostip', '10.82.0.0/24', 'fd00:82::/64'), [dist, '/usr/lib/cni']);
  labs.push(l);
  const out = l.newOutside();
  const a = l.newContainer();
  await attachWithPorts(l, a, [{ hostPort: 9090, containerPort: 80, hostIP: out.hostIP }]);
  await serve(a.path, 80);
  t.regex(await probe(out.path, 'tcp', out.hostIP, 9090), /^ok /, 'on the hostIP');
  t.regex(await probe(l.host, 'tcp', '127.0.0.1', 9090), /^fail .*ECONNREFUSED/, 'not on 127.0.0.1');
  t.regex(await probe(l.host, 'tcp', '10.82.0.1', 9090), /^fail .*ECONNREFUSED/, 'not on the bridge address');
  t.regex(await probe(out.path, 'tcp', out.hostIP6, 9090), /^fail .*ECONNREFUSED/, 'not on the IPv6 address');
});

test('a second container asking for a taken host port fails naming the owner, and leaves nothing behind', async (t) => {
  const l = new Lab(bridgeNetwork('pmdup', '10.83.0.0/24', 'fd00:83::/64'), [dist, '/usr/lib/cni']);
  labs.push(l);
  const a = l.newContainer();
  await attachWithPorts(l, a, [{ hostPort: 8443, containerPort: 443 }]);
  const before = snapshot(l.host);
  const reserved = await l.reservations();
  const elements = inNetns(l.host, () => listPortMappings());
  const b = l.newContainer();
  const e = await t.throwsAsync(attachWithPorts(l, b, [{ hostPort: 7000, containerPort: 70 }, { hostPort: 8443, containerPort: 443 }]), { instanceOf: PluginFailure });
  t.is(e!.code, 7);
  t.regex(e!.message, new RegExp(`8443/tcp .* already published by container ${a.id} \\(interface eth0, network pmdup\\)`));
  t.deepEqual(diffSnapshots(before, snapshot(l.host)), [], 'no veth, address or route left');
  t.deepEqual(await l.reservations(), reserved, 'the address was released');
  t.deepEqual(inNetns(l.host, () => listPortMappings()), elements, 'not even the free port 7000 was published');
  // The failed container's DEL (a runtime cleans up) must not take the owner's port away.
  await l.detach(b);
  t.is(ownedBy(l.host, a.id).length, 2);
  // A refused entry: code 7 naming the field.
  const c = l.newContainer();
  const bad = await t.throwsAsync(attachWithPorts(l, c, [{ hostPort: 70000, containerPort: 70 }]), { instanceOf: PluginFailure });
  t.is(bad!.code, 7);
  t.regex(bad!.message, /portMappings\[0\]\.hostPort: must be a port number from 1 to 65535/);
});

test('CHECK verifies the published ports; GC removes those of attachments no longer valid', async (t) => {
  const l = new Lab(bridgeNetwork('pmcheck', '10.84.0.0/24', 'fd00:84::/64'), [dist, '/usr/lib/cni']);
  labs.push(l);
  const a = l.newContainer();
  const b = l.newContainer();
  const spec = (c: Container, port: number) => ({ ...l.spec(c), capabilityArgs: { portMappings: [{ hostPort: port, containerPort: 80 }] } });
  await l.runtime.add(l.list, spec(a, 8001));
  await l.runtime.add(l.list, spec(b, 8002));
  await t.notThrowsAsync(l.runtime.check(l.list, spec(a, 8001)));
  inNetns(l.host, () => removePortMappings({ network: 'pmcheck', containerID: a.id, ifname: 'eth0' }));
  const e = await t.throwsAsync(l.runtime.check(l.list, spec(a, 8001)), { instanceOf: PluginFailure });
  t.is(e!.code, 100);
  t.regex(e!.message, /8001\/tcp on every host address \(IPv4\) is not published/);
  await l.runtime.gc(l.list, [l.spec(a)]);
  t.deepEqual(ownedBy(l.host, b.id), [], 'GC removed the mappings of b, not in the valid list');
});

test('ADD deletes UDP conntrack entries of the host port (a client that sent before the container existed reaches it)', async (t) => {
  const l = new Lab(bridgeNetwork('pmct', '10.85.0.0/24', 'fd00:85::/64'), [dist, '/usr/lib/cni']);
  labs.push(l);
  const out = l.newOutside();
  // A node where ports are already published (so connections are tracked): a datagram to a port not yet
  // published leaves an entry towards the host itself.
  await attachWithPorts(l, l.newContainer(), [{ hostPort: 5301, containerPort: 53, protocol: 'udp' }]);
  t.regex(await probe(out.path, 'udp', out.hostIP, 5300), /^fail /);
  const entries = () => inNetns(l.host, () => NetlinkSocket.within(NETLINK_NETFILTER, (s) => conntrackList(s, AF_INET)))
    .filter((e) => e.proto === 17 && e.dport === 5300);
  t.true(entries().length > 0, 'an entry exists before the ADD');
  const a = l.newContainer();
  await attachWithPorts(l, a, [{ hostPort: 5300, containerPort: 53, protocol: 'udp' }]);
  t.deepEqual(entries(), [], 'the ADD deleted it');
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
