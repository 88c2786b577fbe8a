import test, { type ExecutionContext } from 'ava';
import { cnictlLabDownLeavesNothing, cnictlLabUp, removeLabDir, withLab as withLabIn } from '../helpers/lab.js';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { runIn } from '../../conformance/spawn.js';
import { cidrContains, formatCIDR, formatIP, parseCIDR, parseIP } from '../../lib/ip/addr.js';
import { RTN_BLACKHOLE } from '../../lib/netlink/constants.js';
import { RTPROT_TETHER_BGP } from '../../lib/route-protocols.js';
import { Netlink } from '../../lib/netlink/handle.js';
import { netnsPath } from '../../lib/netns/netns.js';
import { readSnapshot, type PeerStatus } from '../../lib/bgp/index.js';
import { addPod, connectivity, joinNewNode, loadLab, onNode, ping, waitConverged, type LabNode, type LabState } from '../../lab/index.js';
import { EtcdKV } from '../../lib/store/etcd.js';
import { ipamEtcdPrefix } from '../../ipam/store.js';
import { alive } from '../../lab/procs.js';
import { announcedBy, bgpFiles, bgpMode, learnedRoutes, POD_NETWORK, RR_IP } from '../../lab/bgp.js';
import { until as waitUntil } from '../helpers/wait.js';

// The multi-node BGP lab against the real kernel: nodes are namespaces on one underlay bridge, each
// with a real tetherd in BGP mode (the compiled binary) and a real etcd; pods are attached by exec'ing
// tether-bgp-route with tether-ipam on that etcd. No overlay, no bridge: every pod route is a BGP
// route. Every lab is removed by exact names and PIDs, also when an assertion fails.

const cnictl = fileURLToPath(new URL('../../../dist/bin/cnictl', import.meta.url));

const withLab = (t: ExecutionContext, o: { nodes?: number; pods?: number; pool?: string; modeOptions?: Record<string, unknown> }, fn: (lab: LabState) => Promise<void>) =>
  withLabIn(t, { nodes: o.nodes ?? 4, podsPerNode: o.pods ?? 2, mode: 'bgp', pool: o.pool, modeOptions: o.modeOptions }, fn);

const until = (what: string, cond: () => unknown, ms = 15_000) => waitUntil(what, cond, { ms, every: 50 });

const peersOf = (n: LabNode): PeerStatus[] => readSnapshot(bgpFiles(n).status).peers;
const blocksOf = (n: LabNode) => announcedBy(n).filter((a) => a.blackhole).map((a) => a.prefix);

function blackholes(n: LabNode): string[] {
  return onNode(n, (nl) => nl.routes(4, { protocol: RTPROT_TETHER_BGP }).filter((r) => r.type === RTN_BLACKHOLE && r.dst).map((r) => formatCIDR(r.dst!)));
}

function allReach(t: ExecutionContext, lab: LabState, m: boolean[][]): void {
  const fails = m.flatMap((row, i) => row.map((ok, j) => (ok ? '' : `${lab.pods[i].name}->${lab.pods[j].name}`))).filter(Boolean);
  t.deepEqual(fails, [], 'every pod reaches every other pod');
}

test.serial('cnictl lab up --nodes 4 --mode bgp: a full iBGP mesh, 2 pods per node, all pairs ping; status --json and cnictl bgp peers --json; down removes everything', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'tbl-cli-'));
  try {
    const s = await cnictlLabUp(t, dir, 4, 'bgp');
    t.is(s.nodes.length, 4);
    t.is(s.pods.length, 8);
    for (const n of s.nodes) {
      t.truthy(n.name && n.netns?.startsWith('tbl') && n.underlayIP, JSON.stringify(n));
      t.is(parseCIDR(n.subnet)?.prefix, 26, `${n.name}'s block is a /26: ${n.subnet}`);
    }
    t.is(new Set(s.nodes.map((n: { subnet: string }) => n.subnet)).size, 4, 'every node has a block of its own');
    for (const p of s.pods) {
      const nodeOf = s.nodes.find((n: { name: string }) => n.name === p.node);
      t.true(cidrContains(parseCIDR(nodeOf.subnet)!, parseIP(p.ip)!), `${p.name} ${p.ip} is in its node's block ${nodeOf.subnet}`);
    }
    t.is(s.connectivity.failures, 0, JSON.stringify(s.connectivity));
    t.is(s.connectivity.reachable.flat().filter(Boolean).length, 64);

    const lab = loadLab(dir)!;
    const n1 = lab.nodes[0];
    // The status file follows the speaker (within 250 ms of a change); on a loaded machine a session may
    // also have been re-established since: the peers' view is read until it settles, then checked.
    let list: PeerStatus[] = [];
    await until('n1\'s status shows every peer established with its block', async () => {
      const peers = await runIn(undefined, cnictl, ['bgp', 'peers', '--json', '--bgp-status', bgpFiles(n1).status], 10_000);
      t.is(peers.status, 0, peers.stderr);
      list = JSON.parse(peers.stdout) as PeerStatus[];
      return list.length === 3 && list.every((p) => p.state === 'Established' && p.prefixesIn === 1 && p.prefixesOut === 1);
    }).catch(() => { /* the assertions below say what is wrong */ });
    t.deepEqual(list.map((p) => p.address), ['198.18.0.12', '198.18.0.13', '198.18.0.14'], 'n1 peers with every other node');
    for (const p of list) {
      t.is(p.state, 'Established', JSON.stringify(p));
      t.is(p.prefixesIn, 1, `${p.address} announces its one block`);
      t.is(p.prefixesOut, 1, `n1 announces its one block to ${p.address}`);
      t.true(typeof p.uptime === 'number' && p.uptime >= 0);
    }
    const routes = await runIn(undefined, cnictl, ['bgp', 'routes', '--bgp-status', bgpFiles(n1).status], 10_000);
    t.is(routes.status, 0, routes.stderr);
    t.regex(routes.stdout, /blackhole/);
    for (const n of s.nodes.slice(1)) t.true(routes.stdout.includes(n.subnet), `${n.subnet} in n1's RIB`);
    // The owner node blackholes its block (its unused addresses stop there); pod routes stay /32s of protocol 84.
    t.deepEqual(blackholes(n1), [s.nodes[0].subnet]);

    await cnictlLabDownLeavesNothing(t, dir);
  } finally {
    await removeLabDir(dir);
  }
});

test.serial('tetherd in BGP mode serves /metrics (sessions by state and per peer, routes learned and announced) and keeps its health file; cnictl status shows it running', async (t) => {
  await withLab(t, { nodes: 3, pods: 1 }, async (lab) => {
    const [n1] = lab.nodes;
    const scrape = async () => {
      const r = await runIn(netnsPath(n1.netns), '/bin/busybox', ['wget', '-q', '-O-', 'http://127.0.0.1:9310/metrics'], 15_000);
      t.is(r.status, 0, r.stderr);
      return r.stdout;
    };
    const value = (text: string, series: string) => Number(text.split('\n').find((l) => l.startsWith(`${series} `))?.split(' ').pop());
    let text = '';
    await until('n1 reports both sessions established', async () => value(text = await scrape(), 'tether_bgp_sessions{state="established"}') === 2);
    t.is(value(text, 'tether_bgp_sessions{state="idle"}'), 0);
    for (const other of lab.nodes.slice(1)) t.is(value(text, `tether_bgp_session_up{peer="${other.underlayIP}"}`), 1, `session with ${other.name}`);
    t.true(value(text, 'tether_routes{source="bgp"}') >= 2, 'the other nodes\' blocks are learned');
    t.true(value(text, 'tether_routes{source="local"}') >= 1, 'its own block is announced');
    t.is(value(text, 'tether_remote_nodes{state="known"}'), 2);
    const healthFile = bgpFiles(n1).health;
    const { readFileSync } = await import('node:fs');
    let health: any;
    // The health file is rewritten every healthIntervalMs: one written between the sessions coming up
    // and the node's block being announced is a true snapshot of that moment, so wait for both.
    await until('the health file shows both sessions and the announced block', () => {
      health = JSON.parse(readFileSync(healthFile, 'utf8'));
      return health.sessions.established === 2 && health.announced.length >= 1;
    });
    t.like(health, { pid: n1.agentPid, mode: 'bgp', node: n1.name, asn: 64512, sessions: { total: 2 }, metrics: '127.0.0.1:9310' });
    const status = await runIn(undefined, cnictl, ['status', '--json', '--agent-state', healthFile, '--conf-dir', bgpFiles(n1).cni], 15_000);
    t.is(status.status, 0, status.stderr);
    t.is(JSON.parse(status.stdout).agent?.state, 'running', status.stdout);
  });
});

test.serial('4 nodes as clients of a BIRD 2 route reflector (no mesh): all pairs ping; each node has one session, to BIRD, and learns every block through it', async (t) => {
  await withLab(t, { modeOptions: { topology: 'rr' } }, async (lab) => {
    for (const n of lab.nodes) {
      const peers = peersOf(n);
      t.deepEqual(peers.map((p) => [p.address, p.state]), [[RR_IP, 'Established']], `${n.name} peers with the reflector only`);
      const learned = learnedRoutes(n);
      for (const o of lab.nodes) if (o !== n) for (const b of blocksOf(o)) t.true(learned.has(b), `${n.name} learned ${o.name}'s ${b}`);
    }
    const rr = lab.modeOptions.routeReflector as { netns: string; socket: string };
    const show = await runIn(netnsPath(rr.netns), 'birdc', ['-s', rr.socket, 'show', 'protocols'], 10_000);
    t.is(show.status, 0, show.stderr);
    t.is((show.stdout.match(/\bnode\d+\s+BGP\s+---\s+up\b.*Established/g) ?? []).length, 4, show.stdout);
    allReach(t, lab, await connectivity(lab));
  });
});

test.serial('a node that leaves: its block routes disappear from every other node, its sessions go; the rest still reach each other', async (t) => {
  await withLab(t, { pods: 1 }, async (lab) => {
    const [n1, n2, n3, n4] = lab.nodes;
    const gone = blocksOf(n4);
    t.is(gone.length, 1);
    for (const n of [n1, n2, n3]) t.true(learnedRoutes(n).has(gone[0]), `${n.name} routes n4's block before`);
    await bgpMode.leaveNode(lab, n4);
    for (const n of [n1, n2, n3]) {
      await until(`n4's block gone from ${n.name}`, () => !learnedRoutes(n).has(gone[0]));
      await until(`n4 gone from ${n.name}'s peers`, () => !peersOf(n).some((p) => p.address === n4.underlayIP));
    }
    const rest = lab.pods.filter((p) => p.node !== 'n4');
    const m = await connectivity(lab, rest);
    t.deepEqual(m.flat().filter((ok) => !ok).length, 0, 'the remaining pods reach each other');
    const lost = await ping(rest[0].netns, lab.pods.find((p) => p.node === 'n4')!.ip, ['-c', '1']);
    t.false(lost, 'n4\'s pod is no longer routed');
  });
});

test.serial('a node gone longer than reclaimAfter: its addresses and blocks go back to the pool (no person needed), a new node gets its block; the others keep theirs', async (t) => {
  await withLab(t, { nodes: 3, pods: 1, modeOptions: { reclaimAfter: 2, reclaimIntervalMs: 250 } }, async (lab) => {
    const [n1, n2, n3] = lab.nodes;
    const ipam = new EtcdKV({ endpoints: [lab.etcd.endpoint], prefix: ipamEtcdPrefix(`/${lab.prefix}`, POD_NETWORK) });
    const registry = new EtcdKV({ endpoints: [lab.etcd.endpoint], prefix: `/${lab.prefix}/bgp/lab/` });
    const blockOwners = async () => [...(await ipam.range('block/')).values()].map((e) => JSON.parse(e.value) as { cidr: string; node: string });
    const handlesOf = async (node: string) => [...(await ipam.range('handle/')).values()].filter((e) => JSON.parse(e.value).node === node).length;
    const n3Block = (await blockOwners()).find((b) => b.node === 'n3')!.cidr;
    t.deepEqual([...(await registry.range('members/')).keys()].sort(), ['members/n1', 'members/n2', 'members/n3'], 'every node is a member');
    t.is(await handlesOf('n3'), 1);
    await bgpMode.leaveNode(lab, n3);
    const took = await until('n3\'s block back in the pool', async () => !(await blockOwners()).some((b) => b.node === 'n3'), 30_000);
    t.is(await handlesOf('n3'), 0, 'its pod\'s address is released');
    t.deepEqual([...(await registry.range('members/')).keys()].sort(), ['members/n1', 'members/n2'], 'n3 is no longer a member');
    t.is((await registry.range('gone/')).size, 0);
    t.deepEqual((await blockOwners()).map((b) => b.node).sort(), ['n1', 'n2'], 'the others keep their blocks');
    t.log(`n3's block returned ${took} ms after it left (reclaimAfter 2 s, checked every 250 ms)`);
    const m = await connectivity(lab, lab.pods.filter((p) => p.node !== 'n3'));
    t.is(m.flat().filter((ok) => !ok).length, 0, 'the remaining pods reach each other');
    // The block is free: a node joining now claims it (the lowest free block) for its first pod.
    const n4 = await joinNewNode(lab);
    const pod = await addPod(lab, n4);
    t.true(cidrContains(parseCIDR(n3Block)!, parseIP(pod.ip)!), `n4's pod ${pod.ip} is in the block n3 held (${n3Block})`);
    await until('n4\'s block routed on n1 and n2', () => [n1, n2].every((n) => learnedRoutes(n).has(n3Block)));
    t.true(await ping(lab.pods.find((p) => p.node === 'n1')!.netns, pod.ip), 'and reachable');
  });
});

test.serial('a borrowed address (the pool has 2 blocks for 4 nodes): pods on n3 and n4 get addresses in n1/n2\'s blocks, announced as /32 without blackhole, reachable from pods on every node', async (t) => {
  await withLab(t, { pool: '10.244.0.0/25' }, async (lab) => {
    const [n1, n2, n3, n4] = lab.nodes;
    const blocks = [...blocksOf(n1), ...blocksOf(n2)];
    t.deepEqual(blocks.sort(), ['10.244.0.0/26', '10.244.0.64/26']);
    t.deepEqual([...blocksOf(n3), ...blocksOf(n4)], [], 'n3 and n4 hold no block');
    for (const n of [n3, n4]) {
      const mine = lab.pods.filter((p) => p.node === n.name);
      const ann = announcedBy(n);
      for (const p of mine) {
        t.true(blocks.some((b) => cidrContains(parseCIDR(b)!, parseIP(p.ip)!)), `${p.name} ${p.ip} is borrowed from another node's block`);
        t.deepEqual(ann.find((a) => a.prefix === `${p.ip}/32`), { prefix: `${p.ip}/32`, blackhole: false }, `${n.name} announces ${p.ip}/32 without a blackhole`);
      }
      t.deepEqual(blackholes(n), [], `${n.name} blackholes nothing`);
    }
    // The block's owner routes the borrowed /32 to the borrower, past its own blackhole (longest prefix).
    const borrowed = lab.pods.find((p) => p.node === 'n3')!;
    const owner = cidrContains(parseCIDR(blocksOf(n1)[0])!, parseIP(borrowed.ip)!) ? n1 : n2;
    t.true(learnedRoutes(owner).has(`${borrowed.ip}/32`), `${owner.name} routes ${borrowed.ip}/32 to n3`);
    allReach(t, lab, await connectivity(lab));
  });
});

test.serial('tetherd restart (SIGTERM): local pods keep reaching each other while it is down (blackhole, pod and learned routes stay), and the other nodes keep its block (graceful restart with F and N bits), so remote pods reach it too; after the restart every pair reaches again', async (t) => {
  await withLab(t, {}, async (lab) => {
    const n1 = lab.nodes[0];
    const [a, b] = lab.pods.filter((p) => p.node === 'n1');
    const learnedBefore = [...learnedRoutes(n1)].sort();
    const holesBefore = blackholes(n1);
    await bgpMode.stopNode(lab, n1);
    t.true(await ping(a.netns, b.ip), 'n1p1 reaches n1p2 with tetherd stopped');
    // Its peers keep n1's block over the restart (our GR capability: F and N bits), so remote pods still reach it.
    const n2 = lab.nodes[1];
    await until('n2 sees n1\'s session end', () => peersOf(n2).find((p) => p.address === n1.underlayIP)?.state !== 'Established');
    t.true(learnedRoutes(n2).has(blocksOf(n1)[0]), 'n2 keeps n1\'s block while n1\'s agent is down');
    const remote = lab.pods.find((p) => p.node === 'n2')!;
    t.true(await ping(remote.netns, a.ip), 'a pod on n2 reaches n1p1 while n1\'s agent is down');
    t.deepEqual(blackholes(n1), holesBefore, 'the block\'s blackhole stays');
    t.deepEqual([...learnedRoutes(n1)].sort(), learnedBefore, 'learned routes stay while the agent is down');
    await bgpMode.startNode(lab, n1);
    await waitConverged(lab, 30_000);
    t.deepEqual([...learnedRoutes(n1)].sort(), learnedBefore, 'the same routes after the restart');
    t.deepEqual(blackholes(n1), holesBefore);
    allReach(t, lab, await connectivity(lab));
  });
});

test.serial('dual stack: IPv6 pods in /122 blocks, announced over the IPv4 sessions with the underlay\'s IPv6 address as next hop; blackholed at home; all pairs ping over IPv6 too', async (t) => {
  await withLab(t, { nodes: 3, modeOptions: { pool6: 'fd44::/64' } }, async (lab) => {
    const v6Of = (netns: string) => {
      return Netlink.within(netnsPath(netns), (nl) => nl.addrs({ family: 6 }).find((a) => a.scope === 0 && a.cidr.prefix === 128));
    };
    const pods6 = lab.pods.map((p) => ({ ...p, ip: formatIP(v6Of(p.netns)!.cidr.ip) }));
    for (const p of pods6) t.true(p.ip.startsWith('fd44::'), `${p.name} has ${p.ip}`);
    await until('every IPv6 block routed everywhere', () => lab.nodes.every((n) => lab.nodes.every((o) => o === n || announcedBy(o).every((a) => learnedRoutes(n).has(a.prefix)))));
    for (const n of lab.nodes) {
      const v6blocks = announcedBy(n).filter((a) => a.blackhole && a.prefix.includes(':'));
      t.is(v6blocks.length, 1, `${n.name} announces one IPv6 block`);
      t.is(parseCIDR(v6blocks[0].prefix)!.prefix, 122);
      Netlink.within(netnsPath(n.netns), (nl) => {
        const r6 = nl.routes(6, { protocol: RTPROT_TETHER_BGP });
        t.true(r6.some((r) => r.type === RTN_BLACKHOLE && r.dst && formatCIDR(r.dst) === v6blocks[0].prefix), `${n.name} blackholes its IPv6 block`);
        for (const o of lab.nodes) {
          if (o === n) continue;
          const r = r6.find((x) => x.dst && formatCIDR(x.dst) === announcedBy(o).find((a) => a.prefix.includes(':'))!.prefix);
          t.is(r?.gateway && formatIP(r.gateway), o.underlayIP6, `${n.name} routes ${o.name}'s IPv6 block via its IPv6 underlay address`);
        }
      });
    }
    allReach(t, lab, await connectivity(lab, pods6));
  });
});

test.serial('a tetherd killed with SIGKILL (no Cease): its peers keep its routes as stale (graceful restart helper) and its pods stay reachable; restarted, the routes are fresh again', async (t) => {
  await withLab(t, { nodes: 3, pods: 1 }, async (lab) => {
    const [n1, , n3] = lab.nodes;
    const block = blocksOf(n3)[0];
    const pod3 = lab.pods.find((p) => p.node === 'n3')!;
    const pod1 = lab.pods.find((p) => p.node === 'n1')!;
    process.kill(n3.agentPid!, 'SIGKILL'); // our own child, by PID
    await until('n3 killed', () => !alive(n3.agentPid!));
    n3.agentPid = undefined;
    await until('n1 sees n3\'s session drop and keeps its routes stale', () => {
      const s = readSnapshot(bgpFiles(n1).status);
      const p = s.peers.find((x) => x.address === n3.underlayIP);
      return p?.state !== 'Established' && s.routes.learned.some((r) => r.prefix === block && r.stale);
    });
    t.true(learnedRoutes(n1).has(block), 'n3\'s block is still routed on n1');
    t.true(await ping(pod1.netns, pod3.ip), 'n3\'s pod is reachable while its agent is down');
    await bgpMode.startNode(lab, n3);
    await waitConverged(lab, 30_000);
    await until('the route is fresh again', () => readSnapshot(bgpFiles(n1).status).routes.learned.some((r) => r.prefix === block && !r.stale));
    allReach(t, lab, await connectivity(lab));
  });
});
