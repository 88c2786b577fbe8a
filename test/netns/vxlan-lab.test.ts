import test, { type ExecutionContext } from 'ava';
import { cnictlLabDownLeavesNothing, cnictlLabUp, removeLabDir, withLab as withLabIn } from '../helpers/lab.js';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { runIn, startIn } from '../../conformance/spawn.js';
import { formatCIDR, formatIP, ipEqual, networkOf, parseCIDR, parseIP } from '../../lib/ip/addr.js';
import { formatMAC, parseMAC } from '../../lib/ip/mac.js';
import * as C from '../../lib/netlink/constants.js';
import { netnsPath } from '../../lib/netns/netns.js';
import { EtcdKV } from '../../lib/store/etcd.js';
import { connectivity, onNode, ping, restartEtcd, type LabNode, type LabState } from '../../lab/index.js';
import { alive } from '../../lab/procs.js';
import { vxlanFiles, vxlanMode } from '../../lab/vxlan.js';
import { readNodeState } from '../../lib/node-state.js';
import { RTPROT_TETHER_VXLAN } from '../../lib/route-protocols.js';
import { until as waitUntil } from '../helpers/wait.js';

// The multi-node VXLAN lab against the real kernel: nodes are namespaces on one underlay bridge, each
// with a real tetherd (the compiled binary) talking to a real etcd; pods are attached by exec'ing
// tether-vxlan. Every lab is removed by exact names and PIDs, also when an assertion fails.

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

const withLab = (t: ExecutionContext, o: { nodes?: number; pods?: number; modeOptions?: Record<string, unknown> }, fn: (lab: LabState) => Promise<void>) =>
  withLabIn(t, { nodes: o.nodes ?? 3, podsPerNode: o.pods ?? 2, mode: 'vxlan', modeOptions: o.modeOptions }, fn);


/** What node `on` has programmed for node `of`: route, permanent neighbour, FDB entry. */
function entriesFor(lab: LabState, on: LabNode, of: LabNode) {
  const s = readNodeState(vxlanFiles(of).state)!;
  const subnet = parseCIDR(s.subnet)!;
  return onNode(on, (nl) => {
    const dev = nl.linkByName(readNodeState(vxlanFiles(on).state)!.device);
    if (!dev) return { route: undefined, neigh: undefined, fdb: [], state: s, dev: undefined };
    const route = nl.routes(4).find((r) => r.dst && formatCIDR(r.dst) === s.subnet && r.protocol === RTPROT_TETHER_VXLAN);
    const neigh = nl.neighbors(C.AF_INET, dev.index).find((n) => n.ip && ipEqual(n.ip, networkOf(subnet)) && (n.state & C.NUD_PERMANENT));
    const fdb = nl.neighbors(C.AF_BRIDGE, dev.index).filter((n) => n.mac && formatMAC(n.mac) === s.vtepMAC);
    return { route, neigh, fdb, state: s, dev };
  });
}

const until = (what: string, cond: () => unknown, ms = 5000) => waitUntil(what, cond, { ms, every: 25 });

/** How tetherd says it got its subnet the last time it started (its log). */
function lastSubnetReason(n: LabNode): string | undefined {
  const lines = readFileSync(vxlanFiles(n).log, 'utf8').split('\n').filter((l) => l.includes('info: subnet '));
  return /"how":"([^"]+)"/.exec(lines[lines.length - 1] ?? '')?.[1];
}

const podsOn = (lab: LabState, name: string) => lab.pods.filter((p) => p.node === name);

test.serial('cnictl lab up --nodes 3 --mode vxlan: 3 nodes x 2 pods, status --json lists them and every pod reaches every other pod; down removes everything', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'tvx-cli-'));
  try {
    const s = await cnictlLabUp(t, dir, 3, 'vxlan');
    t.is(s.nodes.length, 3);
    t.is(s.pods.length, 6);
    for (const n of s.nodes) {
      t.truthy(n.name && n.netns && n.underlayIP && n.subnet, JSON.stringify(n));
      t.true(parseCIDR(n.subnet)!.prefix === 24 && n.subnet.startsWith('10.244.'), n.subnet);
    }
    t.is(new Set(s.nodes.map((n: { subnet: string }) => n.subnet)).size, 3, 'every node has its own subnet');
    for (const p of s.pods) {
      const nodeOf = s.nodes.find((n: { name: string }) => n.name === p.node);
      t.true(p.ip.startsWith(nodeOf.subnet.split('.').slice(0, 3).join('.') + '.'), `${p.name} ${p.ip} is in ${nodeOf.subnet}`);
      t.truthy(p.netns);
    }
    t.is(s.connectivity.failures, 0, JSON.stringify(s.connectivity));
    t.is(s.connectivity.reachable.flat().filter(Boolean).length, 36);
    await cnictlLabDownLeavesNothing(t, dir);
  } finally {
    await removeLabDir(dir);
  }
});

test.serial('PMTU: the largest unfragmented packet with DF set crosses the overlay, one byte more fails with "message too long"', async (t) => {
  await withLab(t, { nodes: 2, pods: 1 }, async (lab) => {
    const s = readNodeState(vxlanFiles(lab.nodes[0]).state)!;
    t.is(s.mtu, 1500 - 50, 'overlay MTU is the underlay MTU minus 50');
    const [a, b] = lab.pods;
    const payload = s.mtu - 28; // IPv4 20 + ICMP 8
    t.true(await ping(a.netns, b.ip, ['-M', 'do', '-s', String(payload)]), `${payload}-byte payload with DF crosses`);
    const over = await runIn(netnsPath(a.netns), 'ping', ['-n', '-c', '1', '-W', '1', '-M', 'do', '-s', String(payload + 1), b.ip], 5000);
    t.not(over.status, 0);
    t.regex(over.stdout + over.stderr, /message too long/i);
  });
});

test.serial('a node that leaves is removed from every other node (route, neighbour, FDB); when it rejoins it gets the same subnet back and is reachable again', async (t) => {
  await withLab(t, { nodes: 3, pods: 1 }, async (lab) => {
    const [n1, n2, n3] = lab.nodes;
    const before = entriesFor(lab, n1, n3);
    t.truthy(before.route, 'route to n3 on n1');
    t.truthy(before.neigh, 'neighbour for n3 on n1');
    t.is(before.fdb.length, 1, 'one FDB entry for n3 on n1');
    t.is(formatIP(before.fdb[0].ip!), n3.underlayIP, 'FDB points at n3\'s underlay address');
    t.true(before.route!.onlink);
    const subnet = before.state.subnet;
    await vxlanMode.leaveNode(lab, n3);
    for (const other of [n1, n2]) {
      await until(`n3 gone from ${other.name}`, () => {
        const e = entriesFor(lab, other, n3);
        return !e.route && !e.neigh && e.fdb.length === 0;
      });
    }
    t.pass('n3 unprogrammed on n1 and n2');
    await vxlanMode.startNode(lab, n3);
    t.is(readNodeState(vxlanFiles(n3).state)!.subnet, subnet, 'same subnet after rejoining');
    t.is(lastSubnetReason(n3), 'reclaimed from the state file');
    for (const other of [n1, n2]) await until(`n3 back on ${other.name}`, () => !!entriesFor(lab, other, n3).route);
    t.true(await ping(podsOn(lab, 'n1')[0].netns, podsOn(lab, 'n3')[0].ip), 'n1\'s pod reaches n3\'s pod again');
  });
});

test.serial('a node whose VTEP MAC and underlay address change: the stale neighbour and FDB entries are removed before the new ones are added; the periodic resync repairs drift; a running agent puts its own record back', async (t) => {
  await withLab(t, { nodes: 2, pods: 0, modeOptions: { resyncIntervalMs: 1000 } }, async (lab) => {
    const [n1, n2] = lab.nodes;
    const old = entriesFor(lab, n1, n2);
    t.is(old.fdb.length, 1);
    // Rewrite n2's record as a node whose MAC and address changed would publish it (its own agent
    // stopped: a running one puts its real record back).
    await vxlanMode.stopNode(lab, n2);
    const kv = new EtcdKV({ endpoints: [lab.etcd.endpoint], prefix: `/${lab.prefix}/vxlan/lab/` });
    const key = `subnets/${old.state.subnet.replace('/', '-')}`;
    const cur = (await kv.get(key))!;
    const rec = JSON.parse(cur.value);
    const changed = { ...rec, vtepMAC: '0e:aa:bb:cc:dd:ee', underlayIP: '198.18.0.99' };
    t.true(await kv.txn({ if: [{ key, version: cur.version }], put: [{ key, value: JSON.stringify(changed) }] }));
    await until('the new MAC on n1', () => onNode(n1, (nl) => nl.neighbors(C.AF_BRIDGE, old.dev!.index).some((n) => n.mac && formatMAC(n.mac) === '0e:aa:bb:cc:dd:ee')));
    onNode(n1, (nl) => {
      const fdb = nl.neighbors(C.AF_BRIDGE, old.dev!.index).filter((n) => n.ip);
      t.deepEqual(fdb.map((n) => `${formatMAC(n.mac!)} ${formatIP(n.ip!)}`), ['0e:aa:bb:cc:dd:ee 198.18.0.99'], 'only the new FDB entry is left');
      const neigh = nl.neighbors(C.AF_INET, old.dev!.index).filter((n) => n.state & C.NUD_PERMANENT);
      t.deepEqual(neigh.map((n) => formatMAC(n.mac!)), ['0e:aa:bb:cc:dd:ee'], 'the neighbour entry carries the new MAC');
    });
    // Drift: our route removed and a foreign FDB entry added behind tetherd's back; the resync repairs both.
    onNode(n1, (nl) => {
      nl.routeDel({ family: 4, dst: parseCIDR(old.state.subnet)! });
      nl.neighReplace({ family: C.AF_BRIDGE, index: old.dev!.index, ip: parseIP('198.18.0.77')!, mac: parseMAC('0e:77:77:77:77:77')!, state: C.NUD_PERMANENT, flags: C.NTF_SELF });
    });
    await until('resync repaired the drift', () => onNode(n1, (nl) => !nl.neighbors(C.AF_BRIDGE, old.dev!.index).some((n) => n.mac && formatMAC(n.mac) === '0e:77:77:77:77:77'))
      && !!entriesFor(lab, n1, n2).route, 10_000);
    t.pass('route back, foreign FDB entry gone');
    // n2's agent comes back and publishes its real record; and while it runs, a foreign rewrite is undone.
    const real = () => onNode(n1, (nl) => nl.neighbors(C.AF_BRIDGE, old.dev!.index).filter((n) => n.ip).map((n) => `${formatMAC(n.mac!)} ${formatIP(n.ip!)}`));
    await vxlanMode.startNode(lab, n2);
    await until('n1 follows n2\'s real record', () => JSON.stringify(real()) === JSON.stringify([`${old.state.vtepMAC} ${n2.underlayIP}`]));
    const now = (await kv.get(key))!;
    t.true(await kv.txn({ if: [{ key, version: now.version }], put: [{ key, value: JSON.stringify(changed) }] }));
    await until('n2 republished its record', async () => JSON.parse((await kv.get(key))!.value).vtepMAC === old.state.vtepMAC, 10_000);
    await until('and n1 follows it', () => JSON.stringify(real()) === JSON.stringify([`${old.state.vtepMAC} ${n2.underlayIP}`]));
  });
});

test.serial('tetherd restart on both ends: established pods lose no packets beyond 1 s; SIGTERM leaves the dataplane in place', async (t) => {
  await withLab(t, { nodes: 2, pods: 1 }, async (lab) => {
    const [a, b] = lab.pods;
    const [n1, n2] = lab.nodes;
    const intervalMs = 50;
    const pinger = startIn(netnsPath(a.netns), 'ping', ['-n', '-i', String(intervalMs / 1000), '-w', '6', '-W', '1', b.ip]);
    let out = '';
    pinger.stdout!.on('data', (d: Buffer) => { out += d; });
    const done = new Promise<void>((r) => pinger.on('close', () => r()));
    try {
      await sleep(1000);
      const route = entriesFor(lab, n1, n2).route;
      await vxlanMode.stopNode(lab, n1);
      await vxlanMode.stopNode(lab, n2);
      t.deepEqual(entriesFor(lab, n1, n2).route, route, 'the route survives SIGTERM');
      const subnets = [n1, n2].map((n) => readNodeState(vxlanFiles(n).state)!.subnet);
      await vxlanMode.startNode(lab, n1);
      await vxlanMode.startNode(lab, n2);
      t.deepEqual([n1, n2].map((n) => readNodeState(vxlanFiles(n).state)!.subnet), subnets, 'each node keeps its subnet across the restart');
      t.deepEqual([n1, n2].map(lastSubnetReason), ['reclaimed from the store', 'reclaimed from the store']);
      await done;
    } finally { try { process.kill(-pinger.pid!, 'SIGKILL'); } catch { /* done */ } }
    const m = /(\d+) packets transmitted, (\d+) received/.exec(out);
    t.truthy(m, out);
    const lost = Number(m![1]) - Number(m![2]);
    t.log(`${m![1]} echoes at ${intervalMs} ms across two tetherd restarts, ${lost} lost`);
    t.true(Number(m![2]) > 0);
    t.true(lost * intervalMs <= 1000, `lost ${lost} of ${m![1]} echoes at ${intervalMs} ms (${lost * intervalMs} ms of traffic)`);
  });
});

/** UDP datagrams of a pcap file (Ethernet, IPv4): destination port and payload. */
function udpPayloads(file: string): { dport: number; payload: Buffer }[] {
  const b = readFileSync(file);
  const out: { dport: number; payload: Buffer }[] = [];
  for (let off = 24; off + 16 <= b.length;) {
    const caplen = b.readUInt32LE(off + 8);
    const pkt = b.subarray(off + 16, off + 16 + caplen);
    off += 16 + caplen;
    if (pkt.readUInt16BE(12) !== 0x0800 || pkt[23] !== 17) continue;
    const ihl = (pkt[14] & 0x0f) * 4;
    const udp = 14 + ihl;
    out.push({ dport: pkt.readUInt16BE(udp + 2), payload: pkt.subarray(udp + 8) });
  }
  return out;
}

test.serial('VXLAN on the underlay carries the configured VNI and UDP port (tcpdump capture); tx checksum offload can be turned off', async (t) => {
  const vni = 4242;
  const port = 8472;
  await withLab(t, { nodes: 2, pods: 1, modeOptions: { vni, port, txChecksumOffload: false } }, async (lab) => {
    const [a, b] = lab.pods;
    const n1 = lab.nodes[0];
    const pcap = join(n1.dir, 'cap.pcap');
    const dump = startIn(netnsPath(n1.netns), 'tcpdump', ['-i', 'eth0', '-n', '-U', '-c', '4', '-w', pcap, 'udp']);
    let err = '';
    dump.stderr!.on('data', (d: Buffer) => { err += d; });
    const done = new Promise<void>((r) => dump.on('close', () => r()));
    try {
      await until('tcpdump listening', () => /listening on/.test(err), 10_000);
      t.true(await ping(a.netns, b.ip, ['-c', '3', '-i', '0.2']));
      await Promise.race([done, sleep(5000)]);
    } finally { try { process.kill(-dump.pid!, 'SIGKILL'); } catch { /* done */ } }
    const dgrams = udpPayloads(pcap);
    t.true(dgrams.length >= 2, `captured ${dgrams.length} datagrams`);
    for (const d of dgrams) {
      t.is(d.dport, port, 'UDP destination port');
      t.is(d.payload[0], 0x08, 'VXLAN flags: VNI valid');
      t.is(d.payload.readUIntBE(4, 3), vni, 'VNI');
      const inner = d.payload.subarray(8 + 14);
      const src = formatIP(parseIP(`${inner[12]}.${inner[13]}.${inner[14]}.${inner[15]}`)!);
      const dst = formatIP(parseIP(`${inner[16]}.${inner[17]}.${inner[18]}.${inner[19]}`)!);
      t.deepEqual([src, dst].sort(), [a.ip, b.ip].sort(), 'the inner packet is pod to pod');
    }
    const dev = readNodeState(vxlanFiles(n1).state)!.device;
    const state = await runIn(netnsPath(n1.netns), 'ethtool', ['-k', dev], 5000);
    t.regex(state.stdout, /tx-checksum-ip-generic: off/);
  });
});

test.serial('a deleted VXLAN device is recreated with the same MAC and every peer reprogrammed, one with other parameters is replaced; a node joining later becomes routable from all others', async (t) => {
  await withLab(t, { nodes: 2, pods: 1 }, async (lab) => {
    const [n1, n2] = lab.nodes;
    const s1 = readNodeState(vxlanFiles(n1).state)!;
    onNode(n1, (nl) => nl.linkDel(nl.linkByName(s1.device)!.index));
    await until('device back with its peers', () => !!entriesFor(lab, n1, n2).route, 5000);
    onNode(n1, (nl) => t.is(nl.linkByName(s1.device)!.mac, s1.vtepMAC, 'same MAC'));
    t.true(await ping(lab.pods[0].netns, lab.pods[1].ip), 'pods reach each other again');
    // Someone puts a device of the same name with other parameters in its place: it is replaced.
    onNode(n1, (nl) => {
      nl.linkDel(nl.linkByName(s1.device)!.index);
      const eth0 = nl.linkByName('eth0')!;
      nl.linkAdd({ kind: 'vxlan', name: s1.device, vxlan: { vni: 99, port: 4790, dev: eth0.index, local: parseIP(n1.underlayIP)!, learning: true } });
    });
    await until('device replaced', () => onNode(n1, (nl) => nl.linkByName(s1.device)?.vxlan?.vni === s1.vni) && !!entriesFor(lab, n1, n2).route, 5000);
    onNode(n1, (nl) => {
      const l = nl.linkByName(s1.device)!;
      t.is(l.vxlan!.port, 4789);
      t.false(l.vxlan!.learning);
      t.is(l.mac, s1.vtepMAC);
      t.is(l.mtu, s1.mtu);
    });
    t.true(await ping(lab.pods[0].netns, lab.pods[1].ip), 'and the pods reach each other');
    // A third node: from its agent's start until both others route its subnet.
    const { joinNewNode } = await import('../../lab/index.js');
    const t0 = Date.now();
    const n3 = await joinNewNode(lab);
    const subnet = readNodeState(vxlanFiles(n3).state)!.subnet;
    const published = Date.now() - t0;
    const routed = await until('n3 routable from n1 and n2', () => !!entriesFor(lab, n1, n3).route && !!entriesFor(lab, n2, n3).route, 5000);
    // The time itself is a benchmark figure (npm run bench), not asserted here.
    t.log(`n3 (${subnet}) published after ${published} ms, routable everywhere ${routed} ms later`);
    t.true(onNode(n1, (nl) => nl.routes(4).some((r) => r.dst !== null && formatCIDR(r.dst) === subnet)));
  });
});

test.serial('directRouting: nodes on one L2 segment get plain routes via their underlay address, no encapsulation', async (t) => {
  await withLab(t, { nodes: 2, pods: 1, modeOptions: { directRouting: true } }, async (lab) => {
    const [n1, n2] = lab.nodes;
    const e = entriesFor(lab, n1, n2);
    t.truthy(e.route);
    t.is(formatIP(e.route!.gateway!), n2.underlayIP, 'via the peer\'s underlay address');
    t.false(e.route!.onlink);
    t.is(e.fdb.length, 0, 'no FDB entry');
    t.falsy(e.neigh, 'no permanent neighbour');
    const m = await connectivity(lab);
    t.deepEqual(m, [[true, true], [true, true]]);
  });
});

test.serial('leases: a live node renews its lease past the TTL; a node killed with SIGKILL expires and is removed everywhere; restarted, it reclaims its subnet from its state file', async (t) => {
  await withLab(t, { nodes: 2, pods: 1, modeOptions: { leaseTTL: 5 } }, async (lab) => {
    const [n1, n2] = lab.nodes;
    const kv = new EtcdKV({ endpoints: [lab.etcd.endpoint], prefix: `/${lab.prefix}/vxlan/lab/` });
    const s2 = readNodeState(vxlanFiles(n2).state)!;
    process.kill(n2.agentPid!, 'SIGKILL');
    await until('n2 gone from n1 after its lease expired', () => { const e = entriesFor(lab, n1, n2); return !e.route && !e.neigh && e.fdb.length === 0; }, 20_000);
    t.is(await kv.get(`subnets/${s2.subnet.replace('/', '-')}`), undefined, 'n2\'s key expired');
    const s1 = readNodeState(vxlanFiles(n1).state)!;
    t.truthy(await kv.get(`subnets/${s1.subnet.replace('/', '-')}`), 'n1, alive, kept renewing its 5 s lease');
    await vxlanMode.startNode(lab, n2);
    t.is(readNodeState(vxlanFiles(n2).state)!.subnet, s2.subnet, 'n2 has its subnet back');
    t.is(lastSubnetReason(n2), 'reclaimed from the state file');
    await until('n2 back on n1', () => !!entriesFor(lab, n1, n2).route);
    t.true(await ping(lab.pods[0].netns, lab.pods[1].ip));
  });
});

test.serial('watch: after etcd restarts the agents resume from their last revision; an agent whose missed changes were compacted away re-lists and removes the node that left meanwhile', async (t) => {
  await withLab(t, { nodes: 3, pods: 0 }, async (lab) => {
    const [n1, n2, n3] = lab.nodes;
    const kv = new EtcdKV({ endpoints: [lab.etcd.endpoint], prefix: `/${lab.prefix}/vxlan/lab/` });
    const s3 = readNodeState(vxlanFiles(n3).state)!;
    await restartEtcd(lab);
    // A change after the restart reaches both watchers (n3's own agent stopped, or it would put its real record back).
    await vxlanMode.stopNode(lab, n3);
    const key = `subnets/${s3.subnet.replace('/', '-')}`;
    const cur = (await kv.get(key))!;
    t.true(await kv.txn({ if: [{ key, version: cur.version }], put: [{ key, value: JSON.stringify({ ...JSON.parse(cur.value), vtepMAC: '0e:bb:00:00:00:03' }) }] }));
    const hasMac = (n: LabNode, mac: string) => onNode(n, (nl) => nl.neighbors(C.AF_BRIDGE, nl.linkByName(s3.device)!.index).some((e) => e.mac && formatMAC(e.mac) === mac));
    for (const n of [n1, n2]) await until(`${n.name} follows the change after the restart`, () => hasMac(n, '0e:bb:00:00:00:03'), 10_000);
    // n1 is frozen while etcd restarts under it (its stream is cut with nothing new in it), n3 leaves and
    // the history is compacted: when n1 wakes, it cannot resume from its revision.
    process.kill(n1.agentPid!, 'SIGSTOP');
    try {
      await restartEtcd(lab);
      await vxlanMode.leaveNode(lab, n3);
      await until('n3 gone from n2', () => !hasMac(n2, '0e:bb:00:00:00:03'));
      // Compaction at R keeps revision R itself but drops tombstones at R: one more write, so the delete is history.
      await kv.txn({ if: [], put: [{ key: 'probe', value: '1' }] });
      const rev = (await kv.rangeWithRevision('')).revision;
      const { post } = await import('../../lib/sys/http.js');
      const r = await post({ url: 'http://localhost/v3/kv/compaction', socketPath: lab.etcd.endpoint.slice('unix://'.length), body: JSON.stringify({ revision: String(rev), physical: true }), headers: { 'content-type': 'application/json' }, timeoutMs: 4000 });
      t.is(r.status, 200);
    } finally { process.kill(n1.agentPid!, 'SIGCONT'); }
    try {
      await until('n1 re-listed and removed n3', () => !hasMac(n1, '0e:bb:00:00:00:03') && !entriesFor(lab, n1, n3).route, 15_000);
    } catch (e) { t.log(readFileSync(vxlanFiles(n1).log, 'utf8').split('\n').slice(-8).join('\n')); throw e; }
    t.regex(readFileSync(vxlanFiles(n1).log, 'utf8'), /watch fell behind compaction/);
    t.truthy(entriesFor(lab, n1, n2).route, 'n2 is still programmed on n1');
  });
});

test.serial('an IPv6 underlay: VXLAN from the nodes\' IPv6 addresses, MTU = underlay - 70, pods reach each other with the largest DF packet', async (t) => {
  await withLab(t, { nodes: 2, pods: 1, modeOptions: { underlayFamily: 6 } }, async (lab) => {
    const [n1, n2] = lab.nodes;
    const s = readNodeState(vxlanFiles(n1).state)!;
    t.is(s.mtu, 1500 - 70);
    t.is(s.underlayIP, n1.underlayIP6);
    const e = entriesFor(lab, n1, n2);
    t.is(e.fdb.length, 1);
    t.is(formatIP(e.fdb[0].ip!), n2.underlayIP6, 'the FDB entry points at n2\'s IPv6 address');
    onNode(n1, (nl) => t.is(formatIP(nl.linkByName(s.device)!.vxlan!.local!), n1.underlayIP6));
    const [a, b] = lab.pods;
    t.true(await ping(a.netns, b.ip, ['-M', 'do', '-s', String(s.mtu - 28)]));
  });
});
