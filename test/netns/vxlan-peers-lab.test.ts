import test, { type ExecutionContext } from 'ava';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { runIn } from '../../conformance/spawn.js';
import { addPod, connectivity, joinNewNode, onNode, removePod, waitConverged, type LabNode, type LabState } from '../../lab/index.js';
import { peerHealth } from '../../lab/peers.js';
import { alive } from '../../lab/procs.js';
import { vxlanFiles, vxlanMode } from '../../lab/vxlan.js';
import { bigIntToIP, formatCIDR, formatIP, ipToBigInt, parseCIDR } from '../../lib/ip/addr.js';
import { formatMAC } from '../../lib/ip/mac.js';
import * as C from '../../lib/netlink/constants.js';
import { Netlink } from '../../lib/netlink/handle.js';
import { netnsPath } from '../../lib/netns/netns.js';
import { RTPROT_TETHER_VXLAN } from '../../lib/route-protocols.js';
import { allReach, cnictlLabDownLeavesNothing, cnictlLabUp, removeLabDir, withPeersLab } from '../helpers/lab.js';
import { until as waitUntil } from '../helpers/wait.js';

// VXLAN mode on peers: the lab with no etcd. Each node's tetherd agrees on the pool with the others over
// the gossip port, publishes its VTEP (underlay address, device MAC) in its gossip record, and routes every
// block another live member owns over the VXLAN device to that member's VTEP; pods are on routed veths
// (tether-bgp-route) with tether-ipam ("agentBlocks") on the node's embedded store.

const cnictl = fileURLToPath(new URL('../../../dist/bin/cnictl', import.meta.url));
const until = (what: string, cond: () => unknown, ms = 60_000) => waitUntil(what, cond, { ms, every: 50 });
const health = (n: LabNode) => peerHealth(vxlanFiles(n).health)!;

/** The table in a health file, block by block: CIDR -> owner. */
function owners(n: LabNode): Map<string, string> {
  const out = new Map<string, string>();
  for (const run of health(n).table) {
    const [first, more] = run.blocks.split(' +');
    const c = parseCIDR(first)!;
    for (let i = 0; i <= Number(more ?? 0); i++) out.set(formatCIDR({ ip: bigIntToIP(ipToBigInt(c.ip) + BigInt(i) * 64n, 4), prefix: c.prefix }), run.owner);
  }
  return out;
}

/** The node's VXLAN routes (block -> gateway) and, per gateway, the MAC its neighbour entry on the device gives. */
function dataplane(n: LabNode): { routes: Map<string, string>; macs: Map<string, string>; fdb: Map<string, string> } {
  return onNode(n, (nl) => {
    const dev = nl.linkByName(health(n).vxlan!.device)!;
    const routes = new Map(nl.routes(4, { protocol: RTPROT_TETHER_VXLAN }).map((r) => [formatCIDR(r.dst!), r.gateway ? formatIP(r.gateway) : '']));
    const macs = new Map(nl.neighbors(C.AF_INET, dev.index).filter((x) => x.ip && x.mac).map((x) => [formatIP(x.ip!), formatMAC(x.mac!)]));
    const fdb = new Map(nl.neighbors(C.AF_BRIDGE, dev.index).filter((x) => x.ip && x.mac && x.flags & C.NTF_SELF).map((x) => [formatMAC(x.mac!), formatIP(x.ip!)]));
    return { routes, macs, fdb };
  });
}

/**
 * What is wrong with the nodes' VXLAN dataplane (empty when right): every block another live node owns
 * must be routed to that node's VTEP (its MAC, at its underlay address), and nothing else routed.
 */
function routingProblems(lab: LabState, nodes: LabNode[]): string[] {
  const table = owners(nodes[0]);
  const byName = new Map(lab.nodes.map((n) => [n.name, n]));
  const out: string[] = [];
  for (const n of nodes) {
    const dp = dataplane(n);
    const want = [...table].filter(([, o]) => o !== n.name && health(n).peers.some((p) => p.name === o && p.state === 'live'));
    if (!want.length) out.push(`${n.name}: no other node owns a block`);
    const have = [...dp.routes.keys()].sort().join();
    if (have !== want.map(([c]) => c).sort().join()) out.push(`${n.name} routes ${dp.routes.size} blocks, not the ${want.length} the other live nodes own`);
    for (const [cidr, owner] of want) {
      const mac = dp.macs.get(dp.routes.get(cidr) ?? '');
      if (mac !== health(byName.get(owner)!).vxlan!.mac) out.push(`${n.name}: ${cidr} goes to MAC ${mac}, not ${owner}'s VTEP`);
      else if (dp.fdb.get(mac) !== byName.get(owner)!.underlayIP) out.push(`${n.name}: ${owner}'s MAC is not at its underlay address`);
    }
  }
  return out;
}

/** Waits for the dataplane to be right (a donation may still be moving a block), failing with what is wrong. */
async function routedToOwners(t: ExecutionContext, lab: LabState, nodes: LabNode[]): Promise<void> {
  let last: string[] = [];
  await waitUntil('every block routed to its owner\'s VTEP', () => (last = routingProblems(lab, nodes)).length === 0, { ms: 60_000, every: 100, last: () => last });
  t.deepEqual(last, []);
}

const peersLab = (t: ExecutionContext, nodes: number, pods: number, fn: (lab: LabState) => Promise<void>) => withPeersLab(t, 'vxlan', nodes, pods, fn);

test.serial('3 nodes VXLAN on peers, no etcd: one table, each block routed to its owner\'s VTEP, pods reach each other; a node joins through one member, leaves, one dies and is reclaimed', async (t) => {
  await peersLab(t, 3, 2, async (lab) => {
    t.is(lab.etcd.pid, 0, 'no etcd was started');
    const [n1, n2, n3] = lab.nodes;
    const tables = lab.nodes.map((n) => JSON.stringify(health(n).table));
    t.true(tables.every((x) => x === tables[0]), 'every agent holds the same table');
    t.is(owners(n1).size, 64);
    t.is(new Set(lab.nodes.map((n) => health(n).vxlan!.mac)).size, 3, 'three VTEP MACs');
    await routedToOwners(t, lab, lab.nodes);
    allReach(t, lab.pods, await connectivity(lab));
    // n4 is configured with n2's address only: it learns the rest from n2 and is given blocks.
    lab.modeOptions.joinThrough = 'n2';
    const n4 = await joinNewNode(lab);
    delete lab.modeOptions.joinThrough;
    await until('n4 owns blocks', () => health(n4).owned > 0 && health(n4).peers.filter((p) => p.state === 'live').length === 4);
    await addPod(lab, n4);
    await waitConverged(lab, 60_000);
    await routedToOwners(t, lab, lab.nodes);
    allReach(t, lab.pods, await connectivity(lab), 'with n4');
    // n4's pod goes, then n4 leaves: its blocks move to another node and are routed there.
    for (const p of lab.pods.filter((x) => x.node === 'n4')) await removePod(lab, p);
    await vxlanMode.leaveNode(lab, n4);
    await until('n4 left everywhere', () => [n1, n2, n3].every((n) => health(n).peers.find((p) => p.name === 'n4')?.state === 'left'));
    await waitConverged(lab, 60_000);
    t.false([...owners(n1).values()].includes('n4'), 'n4 owns nothing');
    await routedToOwners(t, lab, [n1, n2, n3]);
    allReach(t, lab.pods, await connectivity(lab), 'after n4 left');
    // n3's agent is SIGKILLed: the dataplane needs no agent to forward, so every pod, n3's too, still reaches every other.
    const killedAt = Date.now(); // the last n3 can have been heard
    process.kill(n3.agentPid!, 'SIGKILL');
    await until('n3\'s agent gone', () => !alive(n3.agentPid!));
    n3.agentPid = undefined;
    allReach(t, lab.pods, await connectivity(lab), 'with n3\'s agent dead');
    // Then n3 dies for good (cut from the underlay): after the vote silence n1 reclaims its blocks, with n2's vote.
    Netlink.within(netnsPath(lab.underlay.netns), (nl) => nl.linkSet(nl.linkByName('n3')!.index, { up: false }));
    const n3blocks = [...owners(n1)].filter(([, o]) => o === 'n3').map(([c]) => c);
    t.true(n3blocks.length >= 16, `n3 owned ${n3blocks.length} blocks`);
    await until('n3 silent for the vote silence', () => [n1, n2].every((n) => (health(n).peers.find((p) => p.name === 'n3')!.lastContactMs ?? 0) > 10_500), 90_000);
    const rc = await runIn(netnsPath(n1.netns), cnictl, ['peers', 'reclaim', 'n3', '--agent-config', vxlanFiles(n1).config, '--timeout', '60'], 90_000);
    t.is(rc.status, 0, rc.stdout + rc.stderr);
    t.regex(rc.stdout, /n3: reclaimed; its blocks now belong to n1/);
    t.true(Date.now() - killedAt >= 10_000, 'not before the vote silence');
    await until('n3 retired on n2', () => health(n2).peers.find((p) => p.name === 'n3')?.state === 'retired');
    await waitConverged(lab, 60_000);
    t.true(n3blocks.every((c) => owners(n2).get(c) === 'n1'), 'n3\'s blocks are n1\'s');
    await routedToOwners(t, lab, [n1, n2]);
    const live = lab.pods.filter((p) => p.node !== 'n3');
    allReach(t, live, await connectivity(lab, live), 'n1 and n2 after the reclaim');
  });
});

test.serial('10 nodes VXLAN on peers: every pod reaches every other', async (t) => {
  await peersLab(t, 10, 1, async (lab) => {
    t.is(lab.etcd.pid, 0);
    const tables = lab.nodes.map((n) => JSON.stringify(health(n).table));
    t.true(tables.every((x) => x === tables[0]));
    await routedToOwners(t, lab, lab.nodes);
    allReach(t, lab.pods, await connectivity(lab));
  });
});

test.serial('cnictl lab up --mode vxlan --store peers: no etcd, each node owns blocks, status --json says every pod reaches every other; down removes everything', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'tvx-peers-cli-'));
  try {
    const s = await cnictlLabUp(t, dir, 3, 'vxlan', ['--store', 'peers']);
    t.is(s.etcd, '', 'no etcd');
    t.is(s.pods.length, 6);
    const owned = s.nodes.map((n: { subnet: string }) => Number(/^(\d+) blocks$/.exec(n.subnet)?.[1] ?? 0));
    t.is(owned.reduce((a: number, b: number) => a + b, 0), 1024, `the /16 in /26 blocks, shared: ${owned}`);
    t.is(s.connectivity.failures, 0, JSON.stringify(s.connectivity));
    t.is(s.connectivity.reachable.flat().filter(Boolean).length, 36);
    await cnictlLabDownLeavesNothing(t, dir);
  } finally {
    await removeLabDir(dir);
  }
});
