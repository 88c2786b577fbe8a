import { writeSync } from 'node:fs';
import { parseArgv, str, UsageError } from '../lib/argv.js';

const USAGE = `cnictl lab: a multi-node cluster in network namespaces on this machine

Usage:
  cnictl lab up --nodes N --mode vxlan [--pods K] [--vni N] [--port P] [--direct-routing] [--tx-checksum-off] [--pool CIDR] [--store peers]
  cnictl lab up --nodes N --mode bgp [--pods K] [--topology mesh|rr] [--pool CIDR] [--pool6 CIDR] [--max-blocks-per-node N] [--store peers]
  cnictl lab status [--json]     the nodes, their subnets, the pods and the pod-to-pod connectivity matrix
  cnictl lab down                removes everything the lab made (namespaces, etcd, agents, files)

Options:
  --dir DIR    where the lab keeps its state and files (default /run/tether/lab)
  --pods K     pods per node (default 2)
  --topology   bgp: a full iBGP mesh of the nodes (default), or rr: every node a client of a BIRD 2
               route reflector the lab runs in its own namespace
  --store peers  no etcd: the agents agree on the pool among themselves (docs/peers.md); pods on
               tether-bgp-route with tether-ipam on the blocks each node's agent owns
  --pool CIDR  the pods' pool (default 10.244.0.0/16); bgp: a pool of fewer /26 blocks than nodes
               makes the last nodes borrow addresses from the others' blocks
  --pool6 CIDR bgp: IPv6 pods too (e.g. fd44::/64, /122 blocks), announced over the IPv4 sessions

Nodes are namespaces on one underlay bridge (198.18.0.0/24) with a real etcd and an agent per node;
pods are namespaces attached through the node's CNI network (tether-vxlan in vxlan mode,
tether-bgp-route + tether-ipam on the lab's etcd in bgp mode).`;

const DEFAULT_DIR = '/run/tether/lab';

export async function labMain(argv: string[]): Promise<number> {
  const out = (s: string) => { writeSync(1, `${s}\n`); };
  let p;
  try {
    p = parseArgv(argv, ['nodes', 'mode', 'pods', 'dir', 'vni', 'port', 'topology', 'pool', 'pool6', 'max-blocks-per-node', 'store'], ['json', 'direct-routing', 'tx-checksum-off', 'help']);
    if (p.flags.has('help')) { out(USAGE); return 0; }
    if (p.positional.length !== 1 || !['up', 'down', 'status'].includes(p.positional[0])) throw new UsageError('lab needs one of up, status, down');
  } catch (e) {
    writeSync(2, `cnictl: ${(e as Error).message}\n\n${USAGE}\n`);
    return 2;
  }
  const lab = await import('../lab/index.js');
  const dir = str(p, 'dir') ?? DEFAULT_DIR;
  const json = p.flags.has('json');
  const num = (name: string, dflt?: number) => {
    const v = str(p, name);
    if (v === undefined) return dflt;
    const n = Number(v);
    if (!Number.isInteger(n) || n < 0) throw new UsageError(`--${name} must be a whole number`);
    return n;
  };
  try {
    switch (p.positional[0]) {
      case 'up': {
        const nodes = num('nodes');
        const mode = str(p, 'mode');
        if (!nodes || !mode) throw new UsageError('lab up needs --nodes N and --mode MODE');
        const modeOptions: Record<string, unknown> = {};
        if (str(p, 'vni')) modeOptions.vni = num('vni');
        if (str(p, 'port')) modeOptions.port = num('port');
        if (p.flags.has('direct-routing')) modeOptions.directRouting = true;
        if (p.flags.has('tx-checksum-off')) modeOptions.txChecksumOffload = false;
        const topology = str(p, 'topology');
        if (topology !== undefined && !['mesh', 'rr'].includes(topology)) throw new UsageError('--topology must be mesh or rr');
        if (topology) modeOptions.topology = topology;
        if (str(p, 'pool6')) modeOptions.pool6 = str(p, 'pool6');
        if (str(p, 'max-blocks-per-node')) modeOptions.maxBlocksPerNode = num('max-blocks-per-node');
        const store = str(p, 'store');
        if (store !== undefined && store !== 'peers' && store !== 'etcd') throw new UsageError('--store must be etcd (the default) or peers');
        if (store === 'peers') {
          if (mode !== 'bgp' && mode !== 'vxlan') throw new UsageError('--store peers is built for --mode vxlan and --mode bgp');
          modeOptions.store = 'peers';
        }
        const t0 = Date.now();
        const state = await lab.labUp({ nodes, podsPerNode: num('pods', 2)!, mode, dir, modeOptions, pool: str(p, 'pool') });
        const s = await lab.labStatus(state);
        out(json ? JSON.stringify(s) : `lab ${state.prefix} up in ${((Date.now() - t0) / 1000).toFixed(1)} s: ${s.nodes.map((n) => `${n.name} ${n.underlayIP} ${n.subnet}`).join(', ')}; ${s.pods.length} pods (state in ${dir})`);
        return 0;
      }
      case 'status': {
        const state = lab.loadLab(dir);
        if (!state) { writeSync(2, `cnictl: no lab in ${dir}\n`); return 1; }
        const s = await lab.labStatus(state);
        const m = await lab.connectivity(state);
        const failures = m.flat().filter((ok) => !ok).length;
        if (json) out(JSON.stringify({ ...s, connectivity: { pods: state.pods.map((x) => x.name), reachable: m, failures } }));
        else {
          out(`lab ${state.prefix} (${state.mode}), etcd ${s.etcd}`);
          for (const n of s.nodes) out(`  node ${n.name}  netns ${n.netns}  underlay ${n.underlayIP}  subnet ${n.subnet ?? '(none)'}  agent pid ${n.agentPid ?? '(stopped)'}`);
          for (const x of s.pods) out(`  pod  ${x.name}  on ${x.node}  netns ${x.netns}  ip ${x.ip}`);
          out(lab.formatMatrix(state.pods, m));
          out(failures ? `${failures} of ${m.length * (m.length - 1)} pod pairs cannot reach each other` : `all ${m.length * (m.length - 1)} pod pairs reach each other`);
        }
        return failures ? 1 : 0;
      }
      default: {
        const state = lab.loadLab(dir);
        if (!state) { out(`no lab in ${dir}: nothing to do`); return 0; }
        const left = await lab.labDown(state);
        if (left.length) { writeSync(2, `cnictl: lab down left ${left.join(', ')}\n`); return 1; }
        out(`lab ${state.prefix} removed`);
        return 0;
      }
    }
  } catch (e) {
    if (e instanceof UsageError) { writeSync(2, `cnictl: ${e.message}\n\n${USAGE}\n`); return 2; }
    writeSync(2, `cnictl: lab: ${(e as Error).message}\n`);
    return 1;
  }
}
