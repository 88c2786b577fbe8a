import test, { type ExecutionContext } from 'ava';
import { runIn } from '../../conformance/spawn.js';
import { announcedBy, bgpFiles, RR_IP } from '../../lab/bgp.js';
import { connectivity, formatMatrix, onNode, type LabNode, type LabState } from '../../lab/index.js';
import { cidrContains, formatCIDR, formatIP, parseCIDR, parseIP } from '../../lib/ip/addr.js';
import * as C from '../../lib/netlink/constants.js';
import { netnsPath } from '../../lib/netns/netns.js';
import { readSnapshot } from '../../lib/bgp/index.js';
import { formatMAC } from '../../lib/ip/mac.js';
import { EtcdKV } from '../../lib/store/etcd.js';
import { vxlanFiles } from '../../lab/vxlan.js';
import { RTPROT_TETHER_BGP, RTPROT_TETHER_POD, RTPROT_TETHER_VXLAN } from '../../lib/route-protocols.js';
import { readNodeState } from '../../lib/node-state.js';
import { parseRecord, SUBNETS, type Peer } from '../../tetherd/subnets.js';
import { Churn, ipamOfNode, ipamProblems, killRepeatedly, procFigures, samples, scrape, seedFrom, tcpSocketsOn, unixSocketsOf, type ProcFigures } from '../helpers/agent-faults.js';
import { heavy } from '../helpers/heavy.js';
import { withLab } from '../helpers/lab.js';
import { mulberry32 } from '../helpers/random.js';
import { until as waitUntil } from '../helpers/wait.js';

// Faults of the node agent itself, in multi-node labs against the real kernel: a BGP peer (BIRD 2, the
// lab's route reflector) flapping the session every second, and tetherd SIGKILLed again and again while
// pods come and go on its node (BGP and VXLAN mode). Each ends with the cluster converged and the kernel
// of every node compared with what the store says should exist. Bounded variants run in `npm test`;
// `npm run test:agent-faults` runs the long ones (TETHER_FLAP_SECONDS, TETHER_CHURN_KILLS;
// TETHER_FAULT_SEED replays a run).

const FLAP_SECONDS = Number(process.env.TETHER_FLAP_SECONDS ?? 15);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));


/** Polls cond (a throw is "not yet"); returns how long it took, or throws after ms with what was last seen. */
const until = (what: string, cond: () => unknown, ms: number, last?: () => unknown) => waitUntil(what, cond, { ms, every: 200, retryErrors: true, last });

const sorted = <T>(xs: Iterable<T>) => [...xs].sort();

/** The node's protocol-245 routes: unicast ones as prefix -> next hop, and blackholes. */
function bgpKernel(node: LabNode): { routes: Record<string, string>; blackholes: string[] } {
  return onNode(node, (nl) => {
    const all = ([4, 6] as const).flatMap((f) => nl.routes(f, { protocol: RTPROT_TETHER_BGP })).filter((r) => r.dst);
    return {
      routes: Object.fromEntries(all.filter((r) => r.type !== C.RTN_BLACKHOLE).map((r) => [formatCIDR(r.dst!), r.gateway ? formatIP(r.gateway) : '?']).sort()),
      blackholes: sorted(all.filter((r) => r.type === C.RTN_BLACKHOLE).map((r) => formatCIDR(r.dst!))),
    };
  });
}

// ---------------------------------------------------------------------------------------------------
// BIRD, the lab's route reflector

function rrOf(lab: LabState) { return lab.modeOptions.routeReflector as { netns: string; socket: string }; }

async function birdc(lab: LabState, ...cmd: string[]): Promise<string> {
  const rr = rrOf(lab);
  const r = await runIn(netnsPath(rr.netns), 'birdc', ['-s', rr.socket, ...cmd], 15_000);
  if (r.status !== 0) throw new Error(`birdc ${cmd.join(' ')}: ${r.stderr}${r.stdout}`);
  return r.stdout;
}

/** The name of BIRD's (dynamic) protocol for the session with `address`. */
async function birdProtocolOf(lab: LabState, address: string): Promise<string> {
  const blocks = (await birdc(lab, 'show', 'protocols', 'all')).split(/\n(?=\S)/);
  const b = blocks.find((x) => new RegExp(`Neighbor address:\\s+${address.replace(/\./g, '\\.')}\\b`).test(x));
  const name = b?.split(/\s+/)[0];
  if (!name) throw new Error(`BIRD has no session with ${address}`);
  return name;
}

/** Prefixes in a `birdc show route ...` listing. */
const birdPrefixes = (out: string) => sorted(new Set(out.split('\n').map((l) => l.split(/\s+/)[0]).filter((w) => /^[0-9a-f.:]+\/\d+$/.test(w))));

// ---------------------------------------------------------------------------------------------------
// 1. A BGP peer flapping every second: BIRD disables and enables the session, resets it, kills its TCP
// connection, or the node's underlay link goes down and up, in turn.

const flapKinds = ['disable', 'reset', 'restart', 'link'] as const;

/** One flap of the session, from BIRD's side. */
async function flap(lab: LabState, proto: string, node: LabNode, kind: (typeof flapKinds)[number]): Promise<void> {
  switch (kind) {
    case 'disable': // Cease (administrative shutdown), the session stays down for half a second
      await birdc(lab, 'disable', proto);
      await sleep(500);
      await birdc(lab, 'enable', proto);
      return;
    case 'restart': // Cease (administrative reset), BIRD is ready again at once
      await birdc(lab, 'restart', proto);
      return;
    case 'reset': { // the TCP connection dies without a NOTIFICATION (graceful restart applies)
      const r = await runIn(netnsPath(rrOf(lab).netns), 'ss', ['-K', 'dst', node.underlayIP], 10_000);
      if (r.status !== 0) throw new Error(`ss -K: ${r.stderr}`);
      return;
    }
    case 'link': // the node's underlay link down for half a second: TCP may ride it out, the kernel's routes through it do not
      onNode(node, (nl) => nl.linkSet(nl.linkByName('eth0')!.index, { up: false }));
      await sleep(500);
      onNode(node, (nl) => nl.linkSet(nl.linkByName('eth0')!.index, { up: true }));
      return;
  }
}

test.serial(`a BGP peer (BIRD 2, route reflector) flapping the session every second for ${FLAP_SECONDS} s while the node's pods (borrowed /32s) come and go: converged afterwards, nothing stale, no leaked socket, idle hold respected`, async (t) => {
  t.timeout((240 + FLAP_SECONDS * 3) * 1000);
  const seed = seedFrom(process.env.TETHER_FAULT_SEED);
  t.log(`seed ${seed}`);
  const rand = mulberry32(seed);
  const labStarted = Date.now();
  // A /25 pool cut in /26 blocks: n1 and n2 claim one each, n3 holds none and borrows, so each of its
  // pods is a /32 announced and withdrawn as it comes and goes.
  await heavy(() => withLab(t, { nodes: 3, podsPerNode: 1, mode: 'bgp', pool: '10.244.0.0/25', modeOptions: { topology: 'rr' } }, async (lab) => {
    const [n1, n2, n3] = lab.nodes;
    const pid = n3.agentPid!;
    const proto = await birdProtocolOf(lab, n3.underlayIP);
    // A listener as it is; a session by state and its two addresses (either side may have connected,
    // so either port may be the ephemeral one a reconnect changes).
    const bgpSockets = () => tcpSocketsOn(pid, 179).map((x) => {
      const [state, ends] = x.split(' ');
      return state === 'listen' ? x : `${state} ${ends.split('->').map((e) => e.replace(/:\d+$/, '')).sort().join(' ')}`;
    }).sort();
    await until('n3 has its listener and one session to BIRD', () => bgpSockets().filter((s) => s.startsWith('established')).length === 1, 30_000, bgpSockets);
    const before: ProcFigures = procFigures(pid);
    const socketsBefore = bgpSockets();

    const churn = new Churn(lab, n3, rand, { min: 1, max: 4, pauseMs: 1500 }).start();
    const kinds: Record<string, number> = {};
    const flapStart = Date.now();
    let flaps = 0;
    try {
      for (let i = 0; i < FLAP_SECONDS; i++) {
        const kind = flapKinds[i % flapKinds.length];
        await flap(lab, proto, n3, kind);
        kinds[kind] = (kinds[kind] ?? 0) + 1;
        flaps++;
        const next = flapStart + (i + 1) * 1000;
        if (next > Date.now()) await sleep(next - Date.now());
      }
      // The last one with the session up: a link flap it rides out, so only the agent can bring back
      // the routes the kernel flushed (a new session would install them afresh).
      await until('the session up again', () => readSnapshot(bgpFiles(n3).status).peers.find((p) => p.address === RR_IP)?.state === 'Established', 60_000);
      await flap(lab, proto, n3, 'link');
      kinds.link = (kinds.link ?? 0) + 1;
      flaps++;
    } finally {
      await churn.stop();
      await birdc(lab, 'enable', proto).catch(() => '');
    }
    const flapSeconds = (Date.now() - flapStart) / 1000;
    t.deepEqual(churn.errors, [], 'every ADD and DEL during the flap succeeded');

    // Converged: the session is back, BIRD holds exactly n3's current announcements, n3's kernel holds
    // exactly what BIRD sends it, and the other nodes route exactly n3's current /32s to it.
    const podsOf = (n: LabNode) => lab.pods.filter((p) => p.node === n.name);
    const wantFromN3 = () => sorted(podsOf(n3).map((p) => `${p.ip}/32`));
    const othersAnnounce = (n: LabNode) => Object.fromEntries(lab.nodes.filter((o) => o !== n).flatMap((o) => announcedBy(o).map((a) => [a.prefix, o.underlayIP])).sort());
    const state = async () => ({
      session: readSnapshot(bgpFiles(n3).status).peers.find((p) => p.address === RR_IP)?.state,
      n3Announces: sorted(announcedBy(n3).map((a) => a.prefix)),
      birdFromN3: birdPrefixes(await birdc(lab, 'show', 'route', 'protocol', proto)),
      birdToN3: birdPrefixes(await birdc(lab, 'show', 'route', 'export', proto)),
      n3Kernel: bgpKernel(n3),
      others: [n1, n2].map((n) => bgpKernel(n).routes),
    });
    let last: Awaited<ReturnType<typeof state>> | undefined;
    const convergedMs = await until('the session back and every table exact', async () => {
      const s = last = await state();
      const want = wantFromN3();
      return s.session === 'Established' && JSON.stringify(s.n3Announces) === JSON.stringify(want) && JSON.stringify(s.birdFromN3) === JSON.stringify(want)
        && JSON.stringify(s.birdToN3) === JSON.stringify(sorted(Object.keys(othersAnnounce(n3))))
        && JSON.stringify(s.n3Kernel.routes) === JSON.stringify(othersAnnounce(n3))
        && [n1, n2].every((n, i) => JSON.stringify(s.others[i]) === JSON.stringify(othersAnnounce(n)));
    }, 120_000, () => last);
    const s = last!;
    t.is(s.session, 'Established');
    t.deepEqual(s.birdFromN3, wantFromN3(), 'BIRD holds exactly n3\'s current pods, nothing withdrawn during the flap');
    t.deepEqual(s.n3Kernel.routes, othersAnnounce(n3), 'n3\'s kernel routes are exactly what the other nodes announce');
    t.deepEqual(s.n3Kernel.blackholes, [], 'n3 owns no block, so it blackholes nothing');
    for (const [i, n] of [n1, n2].entries()) t.deepEqual(s.others[i], othersAnnounce(n), `${n.name} routes exactly the others' current prefixes`);
    const m = await connectivity(lab);
    t.is(m.flat().filter((ok) => !ok).length, 0, formatMatrix(lab.pods, m));
    t.deepEqual(ipamProblems((await ipamOfNode(lab, n3)).allocations, lab.pods), [], 'IPAM holds exactly the pods that exist');

    // The process: the same BGP sockets as before, no descriptor or memory growth.
    await until('n3\'s BGP sockets back to a listener and one session', () => JSON.stringify(bgpSockets()) === JSON.stringify(socketsBefore), 30_000, bgpSockets);
    t.deepEqual(bgpSockets(), socketsBefore, 'the BGP sockets are the listener and one session to BIRD, as before');
    // TCP (BGP, metrics) and netlink sockets exactly as many as before, no more files; the etcd client's
    // Unix sockets may keep one more idle keep-alive connection after a burst of concurrent calls.
    let after = procFigures(pid);
    const files = (f: ProcFigures) => f.fds - f.sockets;
    const settled = (f: ProcFigures) => (f.byKind.tcp ?? 0) === (before.byKind.tcp ?? 0) && (f.byKind.tcp6 ?? 0) === (before.byKind.tcp6 ?? 0)
      && (f.byKind.netlink ?? 0) === (before.byKind.netlink ?? 0) && (f.byKind.unix ?? 0) <= (before.byKind.unix ?? 0) + 1 && files(f) <= files(before);
    await until('the process holds no more than before', () => settled(after = procFigures(pid)), 30_000, () => ({ before, after, tcp: tcpSocketsOn(pid), unix: unixSocketsOf(pid) }));
    t.true(settled(after), JSON.stringify({ before, after }));
    t.true(after.rssKiB < before.rssKiB * 2, `RSS ${before.rssKiB} -> ${after.rssKiB} KiB`);

    // What the FSM did, from tetherd's own counter: sessions re-established during the flap, never more
    // than the peer offered, and no connection attempt sooner than the idle hold / connect retry (5 s) allow.
    const tr = samples(await scrape(n3), 'tether_bgp_session_transitions_total').filter((x) => x.labels.peer === RR_IP);
    const count = (f: (l: Record<string, string>) => boolean) => tr.filter((x) => f(x.labels)).reduce((n, x) => n + x.value, 0);
    const established = count((l) => l.to === 'established');
    const dropped = count((l) => l.from === 'established');
    const connects = count((l) => l.to === 'connect');
    const lifetime = (Date.now() - labStarted) / 1000;
    t.true(dropped >= 1, `the flap ended sessions (${dropped})`);
    t.is(established, dropped + 1, 'every session that ended came back, once each');
    t.true(established <= flaps + 1, `${established} sessions for ${flaps} flaps`);
    t.true(connects <= Math.ceil(lifetime / 5) + 2, `${connects} connection attempts in ${lifetime.toFixed(0)} s`);
    t.deepEqual(await agentErrors(bgpFiles(n3).log), [], 'n3\'s tetherd logged no error');
    const byPair = Object.fromEntries(tr.map((x) => [`${x.labels.from}>${x.labels.to}`, x.value]));
    t.log(`flaps ${flaps} in ${flapSeconds.toFixed(1)} s (${JSON.stringify(kinds)}); pods on n3: ${churn.adds} ADDs, ${churn.dels} DELs`);
    t.log(`sessions ended ${dropped}, established ${established} (incl. the first), connection attempts ${connects}; transitions ${JSON.stringify(byPair)}`);
    t.log(`converged ${(convergedMs / 1000).toFixed(1)} s after the last flap; fds ${before.fds} -> ${after.fds}, sockets ${JSON.stringify(before.byKind)} -> ${JSON.stringify(after.byKind)}, RSS ${(before.rssKiB / 1024).toFixed(1)} -> ${(after.rssKiB / 1024).toFixed(1)} MiB`);
  }));
});

// ---------------------------------------------------------------------------------------------------
// 2. tetherd killed again and again during pod churn

const KILLS = Number(process.env.TETHER_CHURN_KILLS ?? 4);

/** Pod veths (the node's own eth0 on the underlay is a veth too) and permanent neighbours of the node. */
function podSide(node: LabNode): { veths: number; permanentNeighbours: string[] } {
  return onNode(node, (nl) => {
    const veths = nl.links({ kind: 'veth' }).filter((l) => l.name !== 'eth0');
    const perm = veths.flatMap((l) => nl.neighbors(C.AF_INET, l.index).filter((n) => n.ip && n.state & C.NUD_PERMANENT).map((n) => formatIP(n.ip!)));
    return { veths: veths.length, permanentNeighbours: sorted(perm) };
  });
}

/** The node's tetherd log lines at level error, over every run (the log is appended to). */
const agentErrors = async (logFile: string) => (await import('node:fs')).readFileSync(logFile, 'utf8').split('\n').filter((l) => /^tetherd: error: /.test(l));

/**
 * Kills n1's tetherd `KILLS` times while pods come and go on n1, then waits for the mode's own idea of
 * convergence and returns what happened.
 */
async function churnWhileKilling(t: ExecutionContext, lab: LabState, o: { min: number; max: number }) {
  const seed = seedFrom(process.env.TETHER_FAULT_SEED);
  t.log(`seed ${seed}`);
  const rand = mulberry32(seed);
  const n1 = lab.nodes[0];
  const churn = new Churn(lab, n1, rand, { ...o, pauseMs: 300 }).start();
  const t0 = Date.now();
  let kills;
  let restartedAt = 0;
  try { kills = await killRepeatedly(lab, n1, KILLS, rand); restartedAt = Date.now(); } finally { await churn.stop(); }
  t.deepEqual(churn.errors, [], 'every ADD and DEL during the kills succeeded (the plugins do not need tetherd)');
  t.log(`${kills.kills} SIGKILLs of n1's tetherd (${kills.duringStart} during its start, ${kills.afterReady} after it was ready) in ${((Date.now() - t0) / 1000).toFixed(1)} s; pods on n1: ${churn.adds} ADDs, ${churn.dels} DELs, ${lab.pods.filter((p) => p.node === 'n1').length} left`);
  return { kills, churn, restartedAt };
}

async function allPodsReach(t: ExecutionContext, lab: LabState): Promise<void> {
  const m = await connectivity(lab);
  t.is(m.flat().filter((ok) => !ok).length, 0, `every pod reaches every other pod:\n${formatMatrix(lab.pods, m)}`);
  t.log(`ping matrix: ${lab.pods.length} pods, ${lab.pods.length * (lab.pods.length - 1)} pairs, all reached`);
}

test.serial(`BGP mode: n1's tetherd SIGKILLed ${KILLS} times while pods come and go on n1 (borrowed /32s announced and withdrawn): afterwards every pod reaches every other, every node's kernel matches the store exactly, no address leaked, n1 keeps its blocks`, async (t) => {
  t.timeout((240 + KILLS * 15) * 1000);
  // A /28 in /29 blocks: n1 and n2 claim one each at the start, n3 borrows; n1's churn runs past its
  // block and borrows from n2's, so /32s are announced and withdrawn, also while tetherd is dead.
  await heavy(() => withLab(t, { nodes: 3, podsPerNode: 1, mode: 'bgp', pool: '10.244.0.0/28', modeOptions: { blockSize: 29 } }, async (lab) => {
    const [n1] = lab.nodes;
    const blocksBefore = sorted(announcedBy(n1).filter((a) => a.blackhole).map((a) => a.prefix));
    const { restartedAt } = await churnWhileKilling(t, lab, { min: 2, max: 9 });

    // What the store says should exist, and each node's kernel and announcements against it.
    const expected = async () => {
      const u = await ipamOfNode(lab, n1);
      const blocksOf = (n: LabNode) => sorted(u.blocks.filter((b) => b.node === n.name).map((b) => b.cidr));
      const announces = (n: LabNode) => sorted([...blocksOf(n), ...lab.pods.filter((p) => p.node === n.name && !blocksOf(n).some((b) => cidrContains(parseCIDR(b)!, parseIP(p.ip)!))).map((p) => `${p.ip}/32`)]);
      return { u, blocksOf, announces };
    };
    const check = async () => {
      const e = await expected();
      return lab.nodes.map((n) => {
        const k = bgpKernel(n);
        const snap = readSnapshot(bgpFiles(n).status);
        const want = Object.fromEntries(lab.nodes.filter((o) => o !== n).flatMap((o) => e.announces(o).map((p) => [p, o.underlayIP])).sort());
        const pods = lab.pods.filter((p) => p.node === n.name);
        const podRoutes = onNode(n, (nl) => sorted(nl.routes(4, { protocol: RTPROT_TETHER_POD }).map((r) => formatCIDR(r.dst!))));
        return {
          node: n.name,
          sessions: snap.peers.every((p) => p.state === 'Established') && snap.peers.length === lab.nodes.length - 1,
          stale: snap.routes.learned.filter((r) => r.stale).length,
          announces: JSON.stringify(sorted(snap.routes.local.map((a) => a.prefix))) === JSON.stringify(e.announces(n)),
          routes: JSON.stringify(k.routes) === JSON.stringify(want),
          blackholes: JSON.stringify(k.blackholes) === JSON.stringify(e.blocksOf(n)),
          podRoutes: JSON.stringify(podRoutes) === JSON.stringify(sorted(pods.map((p) => `${p.ip}/32`))),
          podSide: JSON.stringify(podSide(n)) === JSON.stringify({ veths: pods.length, permanentNeighbours: sorted(pods.map((p) => p.ip)) }),
          detail: { kernel: k, want, blocks: e.blocksOf(n), announced: snap.routes.local.map((a) => a.prefix) },
        };
      });
    };
    let last: Awaited<ReturnType<typeof check>> = [];
    const ok = (r: (typeof last)[number]) => r.sessions && r.stale === 0 && r.announces && r.routes && r.blackholes && r.podRoutes && r.podSide;
    await until('every node\'s kernel and announcements match the store', async () => (last = await check()).every(ok), 120_000, () => last);
    const convergedMs = Date.now() - restartedAt;
    for (const r of last) t.true(ok(r), `${r.node}: ${JSON.stringify(r)}`);
    const e = await expected();
    t.deepEqual(ipamProblems(e.u.allocations, lab.pods), [], 'no address leaked or held twice');
    t.deepEqual(e.blocksOf(n1).filter((b) => blocksBefore.includes(b)), blocksBefore, 'n1 keeps the blocks it had');
    await allPodsReach(t, lab);
    const errors = await agentErrors(bgpFiles(n1).log);
    t.deepEqual(errors, [], 'n1\'s tetherd logged no error over all its runs');
    t.log(`converged ${(convergedMs / 1000).toFixed(1)} s after the last restart was ready; n1 blocks ${blocksBefore.join(' ')} -> ${e.blocksOf(n1).join(' ')}; borrowed by n1 now: ${e.announces(n1).filter((p) => p.endsWith('/32')).length}; IPAM: ${e.u.allocations.length} held = ${lab.pods.length} pods, 0 leaked`);
  }));
});

test.serial(`VXLAN mode: n1's tetherd SIGKILLed ${KILLS} times while pods come and go on n1: afterwards every pod reaches every other, every node's routes, neighbours and FDB entries are exactly the store's other nodes, no address leaked, n1 keeps its subnet`, async (t) => {
  t.timeout((240 + KILLS * 15) * 1000);
  await heavy(() => withLab(t, { nodes: 3, podsPerNode: 1, mode: 'vxlan' }, async (lab) => {
    const [n1] = lab.nodes;
    const subnetBefore = readNodeState(vxlanFiles(n1).state)!.subnet;
    const { restartedAt } = await churnWhileKilling(t, lab, { min: 2, max: 8 });
    const kv = new EtcdKV({ endpoints: [lab.etcd.endpoint], prefix: `/${lab.prefix}/vxlan/lab/` });
    const check = async () => {
      const records = [...(await kv.rangeWithRevision(SUBNETS)).entries].map(([k, e]) => parseRecord(k, e.value)).filter((p): p is Peer => p !== null);
      return lab.nodes.map((n) => {
        const others = records.filter((r) => r.node !== n.name);
        const dev = readNodeState(vxlanFiles(n).state)!.device;
        const kernel = onNode(n, (nl) => {
          const vx = nl.linkByName(dev)!;
          return {
            routes: sorted(nl.routes(4, { protocol: RTPROT_TETHER_VXLAN }).map((r) => `${formatCIDR(r.dst!)} via ${r.gateway ? formatIP(r.gateway) : '?'} dev ${r.oif === vx.index ? 'vxlan' : r.oif}`)),
            neighbours: sorted(nl.neighbors(C.AF_INET, vx.index).filter((x) => x.ip && x.state & C.NUD_PERMANENT).map((x) => `${formatIP(x.ip!)} ${x.mac ? formatMAC(x.mac) : '?'}`)),
            fdb: sorted(nl.neighbors(C.AF_BRIDGE, vx.index).filter((x) => x.ip && x.flags & C.NTF_SELF).map((x) => `${x.mac ? formatMAC(x.mac) : '?'} dst ${formatIP(x.ip!)}`)),
          };
        });
        const want = {
          routes: sorted(others.map((r) => `${formatCIDR(r.subnet)} via ${formatIP(r.subnet.ip)} dev vxlan`)),
          neighbours: sorted(others.map((r) => `${formatIP(r.subnet.ip)} ${r.vtepMAC.toLowerCase()}`)),
          fdb: sorted(others.map((r) => `${r.vtepMAC.toLowerCase()} dst ${r.underlayIP}`)),
        };
        const pods = lab.pods.filter((p) => p.node === n.name);
        return {
          node: n.name,
          records: records.filter((r) => r.node === n.name).length,
          kernel: JSON.stringify(kernel) === JSON.stringify(want),
          veths: podSide(n).veths === pods.length,
          detail: { kernel, want },
        };
      });
    };
    let last: Awaited<ReturnType<typeof check>> = [];
    const ok = (r: (typeof last)[number]) => r.records === 1 && r.kernel && r.veths;
    try {
      await until('every node\'s routes, neighbours and FDB match the store', async () => (last = await check()).every(ok), 120_000, () => last);
    } finally { kv.close(); }
    const convergedMs = Date.now() - restartedAt;
    for (const r of last) t.true(ok(r), `${r.node}: ${JSON.stringify(r)}`);
    t.is(readNodeState(vxlanFiles(n1).state)!.subnet, subnetBefore, 'n1 keeps its subnet');
    for (const n of lab.nodes) t.deepEqual(ipamProblems((await ipamOfNode(lab, n)).allocations, lab.pods.filter((p) => p.node === n.name)), [], `${n.name}: no address leaked or held twice`);
    await allPodsReach(t, lab);
    t.deepEqual(await agentErrors(vxlanFiles(n1).log), [], 'n1\'s tetherd logged no error over all its runs');
    t.log(`converged ${(convergedMs / 1000).toFixed(1)} s after the last restart was ready; n1 subnet ${subnetBefore} kept`);
  }));
});

// ---------------------------------------------------------------------------------------------------
// 3. The underlay link of a node going down and up (both modes' agents must put back what the kernel
// flushed with it; the BGP case is part of the flap test above)

test.serial('VXLAN mode with directRouting: a node\'s underlay link down and up flushes its direct routes; tetherd puts them back itself (the periodic resync is an hour away), and the pods reach each other again', async (t) => {
  t.timeout(240_000);
  await heavy(() => withLab(t, { nodes: 3, podsPerNode: 1, mode: 'vxlan', modeOptions: { directRouting: true, resyncIntervalMs: 3_600_000 } }, async (lab) => {
    const [n1] = lab.nodes;
    const direct = () => onNode(n1, (nl) => sorted(nl.routes(4, { protocol: RTPROT_TETHER_VXLAN }).map((r) => `${formatCIDR(r.dst!)} via ${r.gateway ? formatIP(r.gateway) : '?'}`)));
    const want = sorted(lab.nodes.slice(1).map((n) => `${readNodeState(vxlanFiles(n).state)!.subnet} via ${n.underlayIP}`));
    t.deepEqual(direct(), want, 'n1 routes the other nodes\' subnets via their underlay addresses');
    onNode(n1, (nl) => nl.linkSet(nl.linkByName('eth0')!.index, { up: false }));
    t.deepEqual(direct(), [], 'the kernel flushed them with the link');
    await sleep(500);
    onNode(n1, (nl) => nl.linkSet(nl.linkByName('eth0')!.index, { up: true }));
    const ms = await until('n1\'s direct routes back', () => JSON.stringify(direct()) === JSON.stringify(want), 60_000, direct);
    await allPodsReach(t, lab);
    t.log(`direct routes back ${(ms / 1000).toFixed(1)} s after the link came up`);
  }));
});
