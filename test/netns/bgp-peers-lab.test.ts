import test, { type ExecutionContext } from 'ava';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { runIn } from '../../conformance/spawn.js';
import { Netlink } from '../../lib/netlink/handle.js';
import { netnsPath } from '../../lib/netns/netns.js';
import { addPod, connectivity, formatMatrix, joinNewNode, removePod, waitConverged, type LabNode, type LabState } from '../../lab/index.js';
import { announcedBy, bgpFiles } from '../../lab/bgp.js';
import { alive } from '../../lab/procs.js';
import { withLab } from '../helpers/lab.js';
import { until as waitUntil } from '../helpers/wait.js';

// BGP mode on peers: the lab with no etcd at all. Each node's tetherd agrees on the pool with the others
// over the gossip port and announces the blocks it owns over BGP; pods are attached by exec'ing
// tether-bgp-route with tether-ipam ("agentBlocks") on the node's embedded store.

const cnictl = fileURLToPath(new URL('../../../dist/bin/cnictl', import.meta.url));
const until = (what: string, cond: () => unknown, ms = 60_000) => waitUntil(what, cond, { ms, every: 50 });
const health = (n: LabNode) => JSON.parse(readFileSync(bgpFiles(n).health, 'utf8')) as { owned: number; peers: { name: string; state: string }[]; table: unknown[] };
const blocksOf = (n: LabNode) => announcedBy(n).filter((a) => a.blackhole).map((a) => a.prefix);

function allReach(t: ExecutionContext, lab: LabState, m: boolean[][]): void {
  const fails = m.flatMap((row, i) => row.map((ok, j) => (ok ? '' : `${lab.pods[i].name}->${lab.pods[j].name}`))).filter(Boolean);
  t.deepEqual(fails, [], formatMatrix(lab.pods, m));
}

const peersLab = (t: ExecutionContext, nodes: number, pods: number, fn: (lab: LabState) => Promise<void>) =>
  withLab(t, { nodes, podsPerNode: pods, mode: 'bgp', pool: '10.244.0.0/20', modeOptions: { store: 'peers' } }, fn);

test.serial('3 nodes on peers, no etcd: one table, each node announces only its own blocks, pods on every node reach each other; a node joins, one leaves, one dies', async (t) => {
  await peersLab(t, 3, 2, async (lab) => {
    t.is(lab.etcd.pid, 0, 'no etcd was started');
    const [n1, n2, n3] = lab.nodes;
    const tables = lab.nodes.map((n) => JSON.stringify(health(n).table));
    t.true(tables.every((x) => x === tables[0]), 'every agent holds the same table');
    const announced = lab.nodes.map(blocksOf);
    t.is(new Set(announced.flat()).size, announced.flat().length, 'no block announced by two nodes');
    t.is(announced.flat().length, 64, 'the /20 in /26 blocks, all announced');
    allReach(t, lab, await connectivity(lab));
    // A node joins through the others' addresses; it is given blocks and its pods reach everyone.
    const n4 = await joinNewNode(lab);
    await until('n4 owns blocks', () => health(n4).owned > 0);
    await addPod(lab, n4);
    await waitConverged(lab, 60_000);
    allReach(t, lab, await connectivity(lab));
    // n4's pod goes, then n4 leaves: its blocks move to another node, which announces them.
    for (const p of lab.pods.filter((x) => x.node === 'n4')) await removePod(lab, p);
    const n4blocks = blocksOf(n4);
    const { leaveNode } = (await import('../../lab/bgp.js')).bgpMode;
    await leaveNode(lab, n4);
    await until('n4\'s blocks announced by the others', () => n4blocks.every((b) => [n1, n2, n3].some((n) => blocksOf(n).includes(b))));
    // n3's agent dies (SIGKILL): the others keep reaching each other's pods.
    process.kill(n3.agentPid!, 'SIGKILL');
    await until('n3 gone', () => !alive(n3.agentPid!));
    const live = lab.pods.filter((p) => p.node !== 'n3');
    const m = await connectivity(lab, live);
    t.deepEqual(m.flatMap((row, i) => row.map((ok, j) => (ok ? '' : `${live[i].name}->${live[j].name}`))).filter(Boolean), []);
    // cnictl status on n1 shows the peers and the table.
    const st = await runIn(undefined, cnictl, ['status', '--agent-state', bgpFiles(n1).health, '--conf-dir', join(n1.dir, 'none')], 20_000);
    t.is(st.status, 0, st.stderr);
    t.regex(st.stdout, /n4\s+198\.18\.0\.14\s+left/);
    n3.agentPid = undefined;
  });
});

test.serial('10 nodes on peers: every pod reaches every other', async (t) => {
  await peersLab(t, 10, 1, async (lab) => {
    t.is(lab.etcd.pid, 0);
    const tables = lab.nodes.map((n) => JSON.stringify(health(n).table));
    t.true(tables.every((x) => x === tables[0]));
    allReach(t, lab, await connectivity(lab));
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
    const lastContact = (n: LabNode, of: string) => (health(n) as unknown as { peers: { name: string; lastContactMs: number | null }[] }).peers.find((p) => p.name === of)?.lastContactMs ?? 0;
    move(['n3', 'n4'], 'br1');
    await until('the halves stop hearing each other', () => lastContact(lab.nodes[0], 'n3') > 1500 && lastContact(lab.nodes[2], 'n1') > 1500);
    for (const n of lab.nodes) for (let k = 0; k < 2; k++) await addPod(lab, n);
    // Each side still routes its own pods while cut.
    for (const side of [['n1', 'n2'], ['n3', 'n4']]) {
      const pods = lab.pods.filter((p) => side.includes(p.node));
      const m = await connectivity(lab, pods);
      t.deepEqual(m.flatMap((row, i) => row.map((ok, j) => (ok ? '' : `${pods[i].name}->${pods[j].name}`))).filter(Boolean), [], `inside ${side.join('+')}`);
    }
    move(['n3', 'n4'], 'br0');
    await until('one table again', () => { const x = lab.nodes.map((n) => JSON.stringify(health(n).table)); return x.every((y) => y === x[0]); });
    await waitConverged(lab, 60_000);
    const ips = lab.pods.map((p) => p.ip);
    t.is(new Set(ips).size, ips.length, `no address twice: ${ips.join(' ')}`);
    allReach(t, lab, await connectivity(lab));
  });
});
