import test from 'ava';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseNetworkList } from '../../lib/libcni/conf.js';
import { PluginFailure } from '../../lib/libcni/runtime.js';
import { Lab } from '../../conformance/lab.js';
import { runIn, startIn } from '../../conformance/spawn.js';
import { parseCIDR } from '../../lib/ip/addr.js';
import { Netlink } from '../../lib/netlink/handle.js';
import { Namespaces } from '../helpers/netns.js';
import { paced } from '../helpers/pace.js';

// One node cut off from etcd by a network partition (etcd in a namespace of its own, reached over a
// veth the test takes down): the node's ADDs fail with code 11 within 5 s naming the endpoint and
// leave nothing; its running pods keep talking; a DEL that cannot release fails so the runtime retries
// it; once the partition heals, the retried DEL releases and ADDs work again.
const dist = fileURLToPath(new URL('../../../dist/bin/', import.meta.url));

test('a node partitioned from etcd: ADD fails with code 11 in under 5 s, running pods keep working, all heals', async (t) => {
  t.timeout(120_000);
  const ns = new Namespaces();
  const dir = mkdtempSync(join(tmpdir(), 'tether-partition-'));
  const third = 64 + Math.floor(Math.random() * 64);
  const etcdIP = `198.18.${third}.1`;
  const nodeIP = `198.18.${third}.2`;
  const port = 20000 + Math.floor(Math.random() * 20000);
  const endpoint = `http://${etcdIP}:${port}`;
  const list = parseNetworkList(Buffer.from(JSON.stringify({
    cniVersion: '1.1.0', name: 'part',
    plugins: [{ type: 'tether-bridge', bridge: 'bpart', isGateway: true, ipam: { type: 'tether-ipam', ranges: [[{ subnet: '10.76.0.0/24' }]], etcd: { endpoints: [endpoint], prefix: '/part', timeoutMs: 3000 } } }],
  })));
  const lab = new Lab(list, [dist]);
  let etcd: ReturnType<typeof startIn> | undefined;
  try {
    // etcd's own namespace, joined to the node (the lab's host namespace) by a veth.
    const etcdNs = ns.add('etcd');
    const link = `${ns.prefix}e`;
    const { openNetns } = await import('../../lib/netns/netns.js');
    const { closeSync } = await import('node:fs');
    const fd = openNetns(etcdNs);
    try {
      Netlink.within(lab.host, (host) => {
        const hostEnd = host.linkAdd({ kind: 'veth', name: link, up: true, peer: { name: 'eth0', netnsFd: fd } })!.index;
        host.addrAdd(hostEnd, parseCIDR(`${nodeIP}/30`)!);
      });
    } finally { closeSync(fd); }
    Netlink.within(etcdNs, (e) => {
      e.addrAdd(e.linkByName('eth0')!.index, parseCIDR(`${etcdIP}/30`)!);
      e.linkSet(e.linkByName('eth0')!.index, { up: true });
      e.linkSet(e.linkByName('lo')!.index, { up: true });
    });
    etcd = startIn(etcdNs, 'etcd', [
      '--name', 'p', '--data-dir', join(dir, 'data'), '--listen-client-urls', endpoint, '--advertise-client-urls', endpoint,
      '--listen-peer-urls', 'http://127.0.0.1:2380', '--initial-advertise-peer-urls', 'http://127.0.0.1:2380', '--initial-cluster', 'p=http://127.0.0.1:2380', '--log-level', 'error',
    ]);
    // Ready once the node can read through the veth. etcdctl runs inside the node's namespace: a client
    // in this process would connect from the machine's own namespace.
    const etcdctl = (...args: string[]) => runIn(lab.host, 'etcdctl', ['--endpoints', endpoint, '--dial-timeout', '1s', ...args], 10_000);
    const until = Date.now() + 15_000;
    for (;;) {
      const r = await etcdctl('endpoint', 'health');
      if (r.status === 0) break;
      if (Date.now() > until) throw new Error(`etcd in ${etcdNs} did not answer: ${r.stderr}`);
      await new Promise((res) => setTimeout(res, 200));
    }

    const p1 = lab.newContainer();
    const p2 = lab.newContainer();
    const r1 = await lab.attach(p1);
    const r2 = await lab.attach(p2);
    const ip2 = r2.ips![0].address.split('/')[0];
    const ping = async (from: string, to: string) => (await runIn(from, 'ping', ['-n', '-c', '1', '-W', '2', to], 10_000)).status === 0;
    t.true(await ping(p1.path, ip2), 'pods talk before the partition');

    // The partition drops packets silently (etcd's end goes down; the node still routes into the veth),
    // so the client's own timeout must end the ADD, not a quick "unreachable".
    const etcdSide = (up: boolean) => Netlink.within(etcdNs, (n) => { n.linkSet(n.linkByName('eth0')!.index, { up }); });
    etcdSide(false);
    try {
      const p3 = lab.newContainer();
      const started = Date.now();
      const err = await t.throwsAsync(lab.attach(p3), { instanceOf: PluginFailure });
      const took = Date.now() - started;
      t.is(err!.code, 11, err!.message);
      t.true(err!.message.includes(endpoint), `the error names the endpoint: ${err!.message}`);
      t.true(took < paced(5000), `ADD gave up in ${took} ms`);
      t.log(`ADD gave up after ${took} ms`);
      Netlink.within(p3.path, (ctr) => { t.is(ctr.linkByName('eth0'), null, 'the failed ADD created nothing in the container'); });
      Netlink.within(lab.host, (host) => { t.is(host.links({ kind: 'veth' }).filter((l) => l.name !== link).length, 2, 'nor on the node: only p1\'s and p2\'s veths'); });
      t.true(await ping(p1.path, ip2), 'running pods keep working while etcd is unreachable');
      const del = await t.throwsAsync(lab.detach(p1), { instanceOf: PluginFailure });
      t.is(del!.code, 11, 'a DEL that cannot release its address fails, so the runtime retries it');
    } finally {
      etcdSide(true);
    }
    // Healed: the retried DEL releases p1's address; a new ADD works.
    await lab.detach(p1);
    const p4 = lab.newContainer();
    const r4 = await lab.attach(p4);
    t.truthy(r4.ips?.[0]?.address);
    const keys = (await etcdctl('get', '--prefix', '--keys-only', '/part/ipam/part/handle/')).stdout.split('\n').filter(Boolean);
    const handles = keys.map((k) => k.split('/').slice(-2, -1)[0]).sort();
    t.deepEqual(handles, [p2.id, p4.id].sort(), 'etcd holds exactly the attachments that exist');
    t.not(r1.ips![0].address, undefined);
    await lab.detach(p2);
    await lab.detach(p4);
  } finally {
    if (etcd?.pid) { try { process.kill(-etcd.pid, 'SIGKILL'); } catch { /* gone */ } }
    lab.close();
    ns.cleanup();
    rmSync(dir, { recursive: true, force: true });
  }
});
