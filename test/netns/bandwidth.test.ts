import test from 'ava';
import type { ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { parseNetworkList, type NetworkList } from '../../lib/libcni/conf.js';
import { Lab, type Container } from '../../conformance/lab.js';
import { runIn, startIn, stop, waitForLine } from '../../conformance/spawn.js';
import { Netlink } from '../../lib/netlink/handle.js';
import { hostVethName } from '../../plugins/common/names.js';

// Bandwidth limits (bandwidth capability) measured with iperf3 in throwaway namespaces, both directions,
// to another host and to another pod on the node.
const dist = fileURLToPath(new URL('../../../dist/bin/', import.meta.url));
const labs: Lab[] = [];
const servers: ChildProcess[] = [];
test.after.always(() => { for (const s of servers) stop(s); for (const l of labs) l.close(); });

const RATE = 40_000_000; // bits per second
const BURST = 2_000_000; // bits: small beside what a run moves (under 2 % of 4 s at the rate)
const limits = { ingressRate: RATE, ingressBurst: BURST, egressRate: RATE, egressBurst: BURST };

async function iperfServer(ns: string, ip: string): Promise<void> {
  const s = startIn(ns, '/usr/bin/iperf3', ['-s', '-B', ip, '-p', '5201', '--forceflush']);
  servers.push(s);
  await waitForLine(s, 'Server listening', 20_000);
}

/** Bits per second the receiver counted over a run from `ns` to ip (reverse: ip sends to ns). */
async function measure(ns: string, ip: string, reverse: boolean): Promise<number> {
  const r = await runIn(ns, '/usr/bin/iperf3', ['-c', ip, '-p', '5201', '-t', '4', '-O', '1', '-J', ...(reverse ? ['-R'] : [])], 60_000);
  if (r.status !== 0) throw new Error(`iperf3 to ${ip}: ${r.stdout.slice(0, 400)} ${r.stderr}`);
  return (JSON.parse(r.stdout) as { end: { sum_received: { bits_per_second: number } } }).end.sum_received.bits_per_second;
}

function network(name: string, chained: boolean): NetworkList {
  const ipam = { type: 'tether-ipam', ranges: [[{ subnet: chained ? '10.88.0.0/24' : '10.87.0.0/24' }]] };
  const plugins = chained
    ? [{ type: 'tether-bridge', bridge: `b${name}`, isDefaultGateway: true, ipMasq: true, ipam }, { type: 'tether-bandwidth', capabilities: { bandwidth: true } }]
    : [{ type: 'tether-bridge', bridge: `b${name}`, isDefaultGateway: true, ipMasq: true, ipam, capabilities: { bandwidth: true } }];
  return parseNetworkList(Buffer.from(JSON.stringify({ cniVersion: '1.1.0', name, plugins })));
}

const within10 = (measured: number) => Math.abs(measured - RATE) / RATE <= 0.1;
const mbit = (n: number) => `${(n / 1e6).toFixed(1)} Mbit/s`;

for (const chained of [false, true]) {
  test(`${chained ? 'tether-bandwidth chained' : 'tether-bridge in its own exec'}: both directions within 10 % of the rate, to another host and another pod; DEL removes it`, async (t) => {
    const l = new Lab(network(chained ? 'bwchain' : 'bwown', chained), [dist, '/usr/lib/cni']);
    labs.push(l);
    const out = l.newOutside();
    const a = l.newContainer();
    const b = l.newContainer();
    await l.runtime.add(l.list, { ...l.spec(a), capabilityArgs: { bandwidth: limits } });
    const rb = await l.runtime.add(l.list, l.spec(b));
    const bIP = rb.ips![0].address.split('/')[0];
    await iperfServer(out.path, out.outsideIP);
    await iperfServer(b.path, bIP);
    for (const [what, ip] of [['another host', out.outsideIP], ['another pod', bIP]] as const) {
      const egress = await measure(a.path, ip, false);
      const ingress = await measure(a.path, ip, true);
      t.log(`${what}: egress ${mbit(egress)}, ingress ${mbit(ingress)} (limit ${mbit(RATE)})`);
      t.true(within10(egress), `egress to ${what}: ${mbit(egress)}`);
      t.true(within10(ingress), `ingress from ${what}: ${mbit(ingress)}`);
    }
    await t.notThrowsAsync(l.runtime.check(l.list, { ...l.spec(a), capabilityArgs: { bandwidth: limits } }));
    // Unshaped pod b is far faster than the limit: the limit is the limit, not the machine.
    const free = await measure(b.path, out.outsideIP, false);
    t.log(`unlimited pod: ${mbit(free)}`);
    t.true(free > RATE * 1.5, `unlimited: ${mbit(free)}`);
    const ifb = hostVethName(a.id, 'eth0', 'tbw');
    const exists = () => Netlink.within(l.host, (nl) => nl.linkByName(ifb) !== null);
    t.true(exists(), 'the egress ifb exists');
    await l.detach(a);
    t.false(exists(), 'DEL removed the ifb');
  });
}

test('tether-bandwidth chained after the reference bridge: both buckets at the configured rates, CHECK passes, DEL removes them', async (t) => {
  const list = parseNetworkList(Buffer.from(JSON.stringify({
    cniVersion: '1.0.0', name: 'bwref', plugins: [
      { type: 'bridge', bridge: 'bbwref', isDefaultGateway: true, ipam: { type: 'host-local', ranges: [[{ subnet: '10.89.1.0/24' }]] } },
      { type: 'tether-bandwidth', capabilities: { bandwidth: true } },
    ],
  })));
  const l = new Lab(list, [dist, '/usr/lib/cni']);
  labs.push(l);
  const a = l.newContainer();
  const spec = { ...l.spec(a), capabilityArgs: { bandwidth: { ingressRate: 8_000_000, ingressBurst: 800_000, egressRate: 16_000_000, egressBurst: 800_000 } } };
  const r = await l.runtime.add(l.list, spec);
  const hostVeth = r.interfaces!.find((i) => !i.sandbox && i.name !== 'bbwref')!.name;
  const ifb = hostVethName(a.id, 'eth0', 'tbw');
  const tbfRate = (dev: string) => Netlink.within(l.host, (nl) => {
    const link = nl.linkByName(dev);
    return link ? nl.qdiscs(link.index).find((q) => q.kind === 'tbf')?.tbf?.rateBytes : undefined;
  });
  t.is(tbfRate(hostVeth), 1_000_000, 'ingress: 8 Mbit/s on the host end of the reference veth');
  t.is(tbfRate(ifb), 2_000_000, 'egress: 16 Mbit/s on the ifb');
  await t.notThrowsAsync(l.runtime.check(l.list, spec));
  await l.runtime.del(l.list, spec);
  t.is(Netlink.within(l.host, (nl) => nl.linkByName(ifb)), null, 'DEL removed the ifb');
});

test('tether-bgp-route in its own exec: both directions within 10 % of the rate to another routed pod; CHECK passes; DEL removes the ifb', async (t) => {
  const list = parseNetworkList(Buffer.from(JSON.stringify({
    cniVersion: '1.1.0', name: 'bwbgp',
    plugins: [{ type: 'tether-bgp-route', capabilities: { bandwidth: true }, ipam: { type: 'tether-ipam', ranges: [[{ subnet: '10.86.1.0/24' }]] } }],
  })));
  const l = new Lab(list, [dist, '/usr/lib/cni']);
  labs.push(l);
  const a = l.newContainer();
  const b = l.newContainer();
  await l.runtime.add(l.list, { ...l.spec(a), capabilityArgs: { bandwidth: limits } });
  const rb = await l.runtime.add(l.list, l.spec(b));
  const bIP = rb.ips![0].address.split('/')[0];
  await iperfServer(b.path, bIP);
  const egress = await measure(a.path, bIP, false);
  const ingress = await measure(a.path, bIP, true);
  t.log(`routed pod to pod: egress ${mbit(egress)}, ingress ${mbit(ingress)} (limit ${mbit(RATE)})`);
  t.true(within10(egress), `egress: ${mbit(egress)}`);
  t.true(within10(ingress), `ingress: ${mbit(ingress)}`);
  await t.notThrowsAsync(l.runtime.check(l.list, { ...l.spec(a), capabilityArgs: { bandwidth: limits } }));
  const ifb = hostVethName(a.id, 'eth0', 'tbw');
  const exists = () => Netlink.within(l.host, (nl) => nl.linkByName(ifb) !== null);
  t.true(exists(), 'the egress ifb exists');
  await l.detach(a);
  t.false(exists(), 'DEL removed the ifb');
});
