import test from 'ava';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { childProcess } from '../../lib/builtin.js';
import { Allocator } from '../../ipam/allocator.js';
import { parseIpamConfig, type IpamConfig } from '../../ipam/config.js';
import { etcdMembersFile, openStore } from '../../ipam/store.js';
import { startEtcd, startEtcdCluster, type EtcdServer } from '../../conformance/etcd.js';
import { cidrContains, parseCIDR, parseIP } from '../../lib/ip/addr.js';
import { heavy } from '../helpers/heavy.js';

// IPAM shared by several nodes in one etcd, each ADD exec'd through the real tether-ipam binary as a
// runtime would, with the node's name in TETHER_NODENAME.
const bin = fileURLToPath(new URL('../../../dist/bin/tether-ipam', import.meta.url));
let etcd: EtcdServer;
test.before(async () => { etcd = await startEtcd({ unix: true }); });
test.after.always(async () => { await etcd?.stop(); });

// The node-local allocation lock lives under dataDir even with etcd: keep it in a private directory.
const dataDir = mkdtempSync(join(tmpdir(), 'tether-ipam-etcd-'));
const conf = (network: string, endpoints: string[], extra: Record<string, unknown> = {}, timeoutMs = 4000) => ({
  cniVersion: '1.1.0', name: network, type: 'tether-ipam',
  ipam: { type: 'tether-ipam', dataDir, ranges: [[{ subnet: '10.50.0.0/22' }]], etcd: { endpoints, prefix: `/it${process.pid}`, timeoutMs }, ...extra },
});

const membersFile = (endpoints: string[]) => etcdMembersFile(dataDir, endpoints);

interface ExecResult { status: number | null; json: any; ms: number; pid?: number }

/** One exec of tether-ipam, like a runtime's delegation; returns its parsed stdout. */
function ipam(command: string, c: object, node: string, containerID: string, killAfterMs?: number): Promise<ExecResult> {
  return new Promise((resolve) => {
    const started = Date.now();
    const child = childProcess().spawn(bin, [], {
      env: { PATH: '/usr/bin:/bin', CNI_COMMAND: command, CNI_CONTAINERID: containerID, CNI_NETNS: `/run/netns/fake-${containerID}`, CNI_NETNS_OVERRIDE: '1', CNI_IFNAME: 'eth0', CNI_PATH: '/nonexistent', TETHER_NODENAME: node },
      stdio: ['pipe', 'pipe', 'ignore'],
    });
    let out = '';
    child.stdout!.on('data', (b: Buffer) => { out += b; });
    if (killAfterMs !== undefined) setTimeout(() => child.kill('SIGKILL'), killAfterMs);
    child.on('close', (status) => {
      let json: any;
      try { json = out ? JSON.parse(out) : undefined; } catch { json = undefined; }
      resolve({ status, json, ms: Date.now() - started, pid: child.pid });
    });
    child.stdin!.end(JSON.stringify(c));
  });
}

function allocator(c: ReturnType<typeof conf>, node = 'observer'): { alloc: Allocator; cfg: IpamConfig } {
  const cfg = parseIpamConfig({ ...c, ipam: { ...c.ipam, nodeName: node } } as any);
  return { alloc: new Allocator(openStore(cfg), cfg), cfg };
}

test.serial('4 nodes, 200 concurrent ADDs from their own processes: no duplicates, each in its node\'s blocks unless borrowed; DEL all empties the pool', async (t) => {
  const c = conf('four', [etcd.endpoint]);
  const nodes = ['node-a', 'node-b', 'node-c', 'node-d'];
  const results = await heavy(() => Promise.all(Array.from({ length: 200 }, (_, i) => ipam('ADD', c, nodes[i % 4], `c${i}`))));
  const failed = results.filter((r) => r.status !== 0);
  t.deepEqual(failed.map((r) => r.json), [], 'every ADD succeeded');
  const ips = results.map((r) => r.json.ips[0].address as string);
  t.is(new Set(ips).size, 200, 'no address handed out twice');
  const { alloc } = allocator(c);
  const blocks = await alloc.blockInfo();
  const owner = (ip: string) => blocks.find((b) => cidrContains(parseCIDR(b.cidr)!, parseIP(ip.split('/')[0])!))!.node;
  let borrowed = 0;
  ips.forEach((ip, i) => { if (owner(ip) !== nodes[i % 4]) borrowed++; });
  t.is(borrowed, 0, 'the /22 has 16 blocks: nobody needed to borrow');
  t.deepEqual([...new Set(blocks.map((b) => b.node))].sort(), nodes);
  const dels = await heavy(() => Promise.all(Array.from({ length: 200 }, (_, i) => ipam('DEL', c, nodes[i % 4], `c${i}`))));
  t.deepEqual(dels.filter((d) => d.status !== 0).map((d) => d.json), [], 'every DEL succeeded');
  t.deepEqual(await alloc.list(), [], 'pool empty');
});

test.serial('3-member etcd: one member down during 100 ADDs, all succeed; two down, ADD fails with 11; back up, nothing lost or doubled', async (t) => {
  const cluster = await startEtcdCluster(3);
  try {
    const c = conf('cluster', cluster.endpoints);
    const budget = c.ipam.etcd.timeoutMs;
    const { alloc } = allocator(c, 'n1');
    const done: Promise<unknown>[] = [];
    for (let i = 0; i < 100; i++) {
      if (i === 30) await cluster.members[0].stop();
      done.push(alloc.allocate({ containerID: `k${i}`, ifname: 'eth0' }));
    }
    const settled = await Promise.allSettled(done);
    t.deepEqual(settled.filter((s) => s.status === 'rejected').map((s) => String((s as PromiseRejectedResult).reason)), [], 'all 100 succeeded with a member down');
    await cluster.members[1].stop();
    const down = await ipam('ADD', c, 'n1', 'nq');
    t.is(down.status, 1);
    t.is(down.json.code, 11);
    t.regex(down.json.msg, /etcd unreachable/);
    // Nothing answers, so the configured budget decides; a loaded machine may add to it, not double it.
    t.true(down.ms < 2 * budget, `failed after ${down.ms} ms (budget ${budget} ms)`);
    await cluster.members[0].start();
    await cluster.members[1].start();
    const again = await ipam('ADD', c, 'n1', 'after');
    t.is(again.status, 0, JSON.stringify(again.json));
    const list = await alloc.list();
    t.is(list.length, 101, '100 + 1, the failed ADD left nothing');
    t.is(new Set(list.map((a) => a.ip)).size, 101);
    t.deepEqual((await alloc.handles()).map((h) => h.containerID).sort(), list.map((a) => a.containerID).sort(), 'every address has its handle and no handle lacks one');
  } finally { await cluster.destroy(); }
});

test.serial('3-member etcd: the member the node prefers goes silent (frozen, its port still open); 100 exec\'d ADDs move to a live member at once and the node remembers it', async (t) => {
  const cluster = await startEtcdCluster(3);
  const frozen: number[] = [];
  try {
    // A long budget: an ADD that waited one out would show at once beside the healthy burst.
    const c = conf('silent', cluster.endpoints, {}, 60_000);
    const burst = (prefix: string) => heavy(() => Promise.all(Array.from({ length: 100 }, (_, i) => ipam('ADD', c, 'n1', `${prefix}${i}`))));
    const healthy = await burst('h');
    t.deepEqual(healthy.filter((r) => r.status !== 0).map((r) => r.json), [], 'the healthy burst succeeded');
    const record = () => JSON.parse(readFileSync(membersFile(cluster.endpoints), 'utf8')) as { preferred?: string; failed: Record<string, { why: string }> };
    const preferred = record().preferred;
    t.truthy(preferred, 'the node remembers the member that answered');
    const victim = cluster.members.find((m) => m.endpoint === preferred)!;
    process.kill(victim.pid()!, 'SIGSTOP');
    frozen.push(victim.pid()!);
    const outage = await burst('o');
    t.deepEqual(outage.filter((r) => r.status !== 0).map((r) => r.json), [], 'all 100 ADDs succeeded with the preferred member silent');
    // ADDs of one node take the node lock in turn, so a request that waited out a member's timeout would
    // stand out as a gap that long between two consecutive ADDs finishing, however slow the machine.
    const budget = c.ipam.etcd.timeoutMs;
    const gaps = (rs: ExecResult[]) => { const ends = rs.map((r) => r.ms).sort((a, b) => a - b); return Math.max(ends[0], ...ends.slice(1).map((e, i) => e - ends[i])); };
    t.log(`largest gap between ADDs finishing: ${gaps(healthy)} ms healthy, ${gaps(outage)} ms with ${victim.name} silent (budget ${budget} ms)`);
    t.true(gaps(outage) < budget, 'no ADD waited a member\'s timeout out');
    const after = record();
    t.not(after.preferred, preferred, 'a live member is preferred now');
    t.truthy(after.failed[preferred!], `${victim.name} is remembered as failed`);
    const ips = outage.map((r) => r.json.ips[0].address);
    t.is(new Set([...ips, ...healthy.map((r) => r.json.ips[0].address)]).size, 200, 'no address handed out twice');
  } finally {
    for (const pid of frozen) process.kill(pid, 'SIGCONT');
    await cluster.destroy();
  }
});

test.serial('kill -9 of ADD processes at random moments, then GC: no leaked and no doubly-held address', async (t) => {
  const c = conf('killed', [etcd.endpoint]);
  const runs = await Promise.all(Array.from({ length: 40 }, (_, i) => ipam('ADD', c, 'n1', `v${i}`, i % 2 ? Math.floor(Math.random() * 40) : undefined)));
  const ok = runs.map((r, i) => ({ r, id: `v${i}` })).filter((x) => x.r.status === 0).map((x) => x.id);
  t.true(ok.length >= 20, 'the ADDs that were not killed all succeeded');
  const killed = runs.filter((r) => r.status === null).length;
  t.true(killed > 0, 'some ADDs were really killed before they finished');
  t.log(`${killed} of 20 targeted ADDs killed mid-flight, ${ok.length} completed`);
  // The runtime saw the killed ADDs fail: they are not valid attachments. CNI GC, as a runtime sends it:
  const gc = await ipam('GC', { ...c, 'cni.dev/valid-attachments': ok.map((id) => ({ containerID: id, ifname: 'eth0' })) }, 'n1', 'gc');
  t.is(gc.status, 0, JSON.stringify(gc.json));
  const { alloc } = allocator(c, 'n1');
  const list = await alloc.list();
  t.deepEqual(list.map((a) => a.containerID).sort(), [...ok].sort(), 'exactly the successful ADDs hold addresses');
  t.is(new Set(list.map((a) => a.ip)).size, list.length, 'no address held twice');
  t.deepEqual((await alloc.handles()).map((h) => h.containerID).sort(), [...ok].sort(), 'no orphaned handle');
});

test.serial('etcd over TLS with client certificates, from the compiled plugin (Bun) and from Node', async (t) => {
  const { makeTestPki } = await import('../../conformance/etcd.js');
  const { EtcdKV } = await import('../../lib/store/etcd.js');
  const pki = makeTestPki(mkdtempSync(join(tmpdir(), 'tether-pki-')));
  const server = await startEtcd({ tls: pki });
  try {
    const tls = { ca: pki.ca, cert: pki.clientCert, key: pki.clientKey };
    const c = { ...conf('tls', [server.endpoint]), ipam: { ...conf('tls', [server.endpoint]).ipam, etcd: { endpoints: [server.endpoint], prefix: '/tls', tls } } };
    const add = await ipam('ADD', c, 'n1', 'tls1');
    t.is(add.status, 0, JSON.stringify(add.json));
    const { alloc } = allocator(c as any, 'n1');
    t.deepEqual((await alloc.list()).map((a) => a.containerID), ['tls1'], 'Node reads over TLS what the Bun binary wrote');
    // without a client certificate the server refuses: a clear code 11, not a hang
    const noCert = { ...c, ipam: { ...c.ipam, etcd: { endpoints: [server.endpoint], prefix: '/tls', tls: { ca: pki.ca } } } };
    const refused = await ipam('ADD', noCert, 'n1', 'tls2');
    t.is(refused.status, 1);
    t.is(refused.json.code, 11);
    await t.throwsAsync(new EtcdKV({ endpoints: [server.endpoint], prefix: '/x/', timeoutMs: 2000, tls: { ca: pki.ca } }).get('a'));
  } finally { await server.stop(); }
});

test.serial('etcd with user/password auth, credentials from a file kept out of the conflist', async (t) => {
  const { writeFileSync } = await import('node:fs');
  const server = await startEtcd();
  try {
    const ctl = (...args: string[]) => childProcess().spawnSync('etcdctl', ['--endpoints', server.endpoint, ...args], { encoding: 'utf8', env: { ...process.env, ETCDCTL_API: '3' } });
    for (const args of [['user', 'add', 'root:rootpw'], ['role', 'add', 'root'], ['user', 'grant-role', 'root', 'root'], ['auth', 'enable']]) {
      const r = ctl(...args);
      t.is(r.status, 0, `etcdctl ${args.join(' ')}: ${r.stderr}`);
    }
    const dir = mkdtempSync(join(tmpdir(), 'tether-cred-'));
    const creds = join(dir, 'etcd.json');
    writeFileSync(creds, JSON.stringify({ username: 'root', password: 'rootpw' }), { mode: 0o600 });
    const base = conf('auth', [server.endpoint]);
    const c = { ...base, ipam: { ...base.ipam, etcd: { endpoints: [server.endpoint], prefix: '/auth', credentialsFile: creds } } };
    const add = await ipam('ADD', c, 'n1', 'auth1');
    t.is(add.status, 0, JSON.stringify(add.json));
    t.false(JSON.stringify(add.json).includes('rootpw'), 'the password never appears in a result');
    const wrong = { ...base, ipam: { ...base.ipam, etcd: { endpoints: [server.endpoint], prefix: '/auth', username: 'root', password: 'nope' } } };
    const refused = await ipam('ADD', wrong, 'n1', 'auth2');
    t.is(refused.status, 1);
    t.regex(refused.json.msg, /refused the credentials of user "root"/);
    t.false(JSON.stringify(refused.json).includes('nope'), 'nor in an error');
  } finally { await server.stop(); }
});
