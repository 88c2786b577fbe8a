import test, { type ExecutionContext } from 'ava';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { runIn } from '../../conformance/spawn.js';
import { Netlink } from '../../lib/netlink/handle.js';
import { netnsPath } from '../../lib/netns/netns.js';
import { addPod, connectivity, joinNewNode, removePod, waitConverged, type LabNode, type LabState } from '../../lab/index.js';
import { announcedBy, bgpFiles, learnedRoutes } from '../../lab/bgp.js';
import { alive } from '../../lab/procs.js';
import { allReach, withPeersLab } from '../helpers/lab.js';
import { until as waitUntil } from '../helpers/wait.js';

// BGP mode on peers: the lab with no etcd at all. Each node's tetherd agrees on the pool with the others
// over the gossip port and announces the blocks it owns over BGP; pods are attached by exec'ing
// tether-bgp-route with tether-ipam ("agentBlocks") on the node's embedded store.

const cnictl = fileURLToPath(new URL('../../../dist/bin/cnictl', import.meta.url));
const until = (what: string, cond: () => unknown, ms = 60_000) => waitUntil(what, cond, { ms, every: 50 });
const health = (n: LabNode) => JSON.parse(readFileSync(bgpFiles(n).health, 'utf8')) as { owned: number; peers: { name: string; state: string }[]; table: unknown[] };
const oneTable = (ns: LabNode[]) => { const x = ns.map((n) => JSON.stringify(health(n).table)); return x[0] !== '[]' && x.every((y) => y === x[0]); };
const blocksOf = (n: LabNode) => announcedBy(n).filter((a) => a.blackhole).map((a) => a.prefix);
const lastContact = (n: LabNode, of: string) => (health(n) as unknown as { peers: { name: string; lastContactMs: number | null }[] }).peers.find((p) => p.name === of)?.lastContactMs;

const peersLab = (t: ExecutionContext, nodes: number, pods: number, fn: (lab: LabState) => Promise<void>) => withPeersLab(t, 'bgp', nodes, pods, fn);

test.serial('3 nodes on peers, no etcd: one table, each node announces only its own blocks, pods on every node reach each other; a node joins, one leaves, one dies', async (t) => {
  await peersLab(t, 3, 2, async (lab) => {
    t.is(lab.etcd.pid, 0, 'no etcd was started');
    const [n1, n2, n3] = lab.nodes;
    await until('every agent\'s health file shows the same table', () => oneTable(lab.nodes));
    const announced = lab.nodes.map(blocksOf);
    t.is(new Set(announced.flat()).size, announced.flat().length, 'no block announced by two nodes');
    t.is(announced.flat().length, 64, 'the /20 in /26 blocks, all announced');
    allReach(t, lab.pods, await connectivity(lab));
    // A node joins through the others' addresses; it is given blocks and its pods reach everyone.
    const n4 = await joinNewNode(lab);
    await until('n4 owns blocks', () => health(n4).owned > 0);
    await addPod(lab, n4);
    await waitConverged(lab, 60_000);
    allReach(t, lab.pods, await connectivity(lab));
    // n4's pod goes, then n4 leaves: its blocks move to another node, which announces them.
    for (const p of lab.pods.filter((x) => x.node === 'n4')) await removePod(lab, p);
    const n4blocks = blocksOf(n4);
    const { leaveNode } = (await import('../../lab/bgp.js')).bgpMode;
    await leaveNode(lab, n4);
    await until('n4\'s blocks announced by the others', () => n4blocks.every((b) => [n1, n2, n3].some((n) => blocksOf(n).includes(b))));
    // cnictl status on n1 shows the peers and the table. The health file is rewritten at each change of
    // the table, but by another process: wait for it rather than read it the instant the routes moved.
    await until('n1\'s health file says n4 left', () => health(n1).peers.find((p) => p.name === 'n4')?.state === 'left');
    const st = await runIn(undefined, cnictl, ['status', '--agent-state', bgpFiles(n1).health, '--conf-dir', join(n1.dir, 'none')], 20_000);
    t.is(st.status, 0, st.stderr);
    t.regex(st.stdout, /n4\s+198\.18\.0\.14\s+left/);
    // n3 dies: its agent SIGKILLed and the node cut from the underlay. After the vote silence n1 reclaims
    // its blocks with n2's vote and announces them; the live nodes' pods keep reaching each other.
    const n3blocks = blocksOf(n3);
    t.true(n3blocks.length >= 16, `n3 announced ${n3blocks.length} blocks`);
    const killedAt = Date.now(); // the last n3 can have been heard
    process.kill(n3.agentPid!, 'SIGKILL');
    await until('n3 gone', () => !alive(n3.agentPid!));
    n3.agentPid = undefined;
    Netlink.within(netnsPath(lab.underlay.netns), (nl) => nl.linkSet(nl.linkByName('n3')!.index, { up: false }));
    const live = lab.pods.filter((p) => p.node !== 'n3');
    allReach(t, live, await connectivity(lab, live), 'n1 and n2 with n3 dead');
    await until('n3 silent for the vote silence', () => [n1, n2].every((n) => (lastContact(n, 'n3') ?? 0) > 10_500), 90_000);
    const rc = await runIn(netnsPath(n1.netns), cnictl, ['peers', 'reclaim', 'n3', '--agent-config', bgpFiles(n1).config, '--timeout', '60'], 90_000);
    t.is(rc.status, 0, rc.stdout + rc.stderr);
    t.regex(rc.stdout, /n3: reclaimed; its blocks now belong to n1/);
    t.true(Date.now() - killedAt >= 10_000, 'not before the vote silence');
    await until('n1 announces n3\'s blocks, n2 routes them', () => n3blocks.every((b) => blocksOf(n1).includes(b) && learnedRoutes(n2).has(b)));
    t.deepEqual(n3blocks.filter((b) => blocksOf(n2).includes(b)), [], 'n2 announces none of them');
    allReach(t, live, await connectivity(lab, live), 'n1 and n2 after the reclaim');
  });
});

test.serial('10 nodes on peers: every pod reaches every other', async (t) => {
  await peersLab(t, 10, 1, async (lab) => {
    t.is(lab.etcd.pid, 0);
    await until('every agent\'s health file shows the same table', () => oneTable(lab.nodes));
    allReach(t, lab.pods, await connectivity(lab));
  });
});

test.serial('the underlay cut between halves: pods are added on both sides from what each node owns; healed, no address twice, one table, every pod reaches every other', async (t) => {
  await peersLab(t, 4, 1, async (lab) => {
    const ul = netnsPath(lab.underlay.netns);
    Netlink.within(ul, (nl) => nl.linkAdd({ kind: 'bridge', name: 'br1', up: true, bridge: { stpState: 0, forwardDelay: 0 } }));
    const move = (names: string[], bridge: string) => Netlink.within(ul, (nl) => {
      const br = nl.linkByName(bridge)!;
      for (const n of names) nl.linkSet(nl.linkByName(n)!.index, { master: br.index });
    });
    move(['n3', 'n4'], 'br1');
    await until('the halves stop hearing each other', () => (lastContact(lab.nodes[0], 'n3') ?? 0) > 1500 && (lastContact(lab.nodes[2], 'n1') ?? 0) > 1500);
    for (const n of lab.nodes) for (let k = 0; k < 2; k++) await addPod(lab, n);
    // Each side still routes its own pods while cut.
    for (const side of [['n1', 'n2'], ['n3', 'n4']]) {
      const pods = lab.pods.filter((p) => side.includes(p.node));
      allReach(t, pods, await connectivity(lab, pods), `inside ${side.join('+')}`);
    }
    move(['n3', 'n4'], 'br0');
    await until('one table again', () => oneTable(lab.nodes));
    await waitConverged(lab, 60_000);
    const ips = lab.pods.map((p) => p.ip);
    t.is(new Set(ips).size, ips.length, `no address twice: ${ips.join(' ')}`);
    allReach(t, lab.pods, await connectivity(lab));
  });
});
