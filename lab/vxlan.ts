import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { readNodeState } from '../lib/node-state.js';
import { RTPROT_TETHER_VXLAN } from '../lib/route-protocols.js';
import { formatCIDR } from '../lib/ip/addr.js';
import { onNode } from './multinode.js';
import { registerMode, type ModeDriver } from './modes.js';
import type { LabNode, LabState } from './types.js';
import { leaveAgent, startAgent, stopAgent } from './tetherd.js';
import { onPeers, peerHealth, peerIpam, peerStoreConfig, writePeerKey } from './peers.js';

/**
 * The VXLAN mode: a tetherd per node (in the node's namespace), pods on tether-vxlan with etcd; on
 * peers ("store": "peers") no etcd, each node's blocks routed over the overlay to its owner, pods on
 * routed veths (tether-bgp-route, the plain per-pod /32 plugin) with tether-ipam from the agent's blocks.
 */
const files = (node: LabNode) => ({
  config: join(node.dir, 'tetherd.json'),
  state: join(node.dir, 'vxlan.json'),
  log: join(node.dir, 'tetherd.log'),
  health: join(node.dir, 'health.json'),
  /** The pod network as a conflist, for tetherd's IPAM metrics and `cnictl status --conf-dir`. */
  confDir: join(node.dir, 'net.d'),
  cni: join(node.dir, 'cni'),
});

/** The pod network on peers (the node's embedded IPAM store under cni/<name>). */
const PEERS_POD_NETWORK = 'lab-pods';

export function agentConfig(lab: LabState, node: LabNode): Record<string, unknown> {
  if (onPeers(lab)) {
    const { store: _s, blockSize: _b, joinThrough: _j, ...rest } = lab.modeOptions;
    return {
      mode: 'vxlan', network: 'lab', nodeName: node.name,
      ...peerStoreConfig(lab, node, { network: PEERS_POD_NETWORK, dataDir: files(node).cni }),
      checkIntervalMs: 250,
      logLevel: 'debug',
      observe: { healthFile: files(node).health, metricsAddress: '127.0.0.1:9310', confDir: files(node).confDir, healthIntervalMs: 250 },
      ...rest,
    };
  }
  return {
    network: 'lab',
    pool: lab.pool,
    subnetLen: 24,
    nodeName: node.name,
    etcd: { endpoints: [lab.etcd.endpoint], prefix: `/${lab.prefix}` },
    stateFile: files(node).state,
    // Short enough that a node killed without leaving is gone within a test, long enough for a loaded machine.
    leaseTTL: 30,
    checkIntervalMs: 250,
    logLevel: 'debug',
    // Each node's health file in its own directory (the default is the machine's /run/tether/tetherd.json);
    // metrics on the node namespace's own loopback.
    observe: { healthFile: files(node).health, metricsAddress: '127.0.0.1:9310', confDir: files(node).confDir },
    ...lab.modeOptions,
  };
}

const podNetwork = (lab: LabState, node: LabNode): Record<string, unknown> => (onPeers(lab) ? {
  cniVersion: '1.0.0',
  name: PEERS_POD_NETWORK,
  plugins: [{ type: 'tether-bgp-route', ipam: { type: 'tether-ipam', ranges: [[{ subnet: lab.pool }]], nodeName: node.name, dataDir: files(node).cni, ...peerIpam(lab) } }],
} : {
  cniVersion: '1.0.0',
  name: 'lab-overlay',
  plugins: [{ type: 'tether-vxlan', stateFile: files(node).state, dataDir: files(node).cni, delegate: { isDefaultGateway: true } }],
});

/** On peers: every running agent holds the same table and a block, and routes exactly the blocks of every other live member. */
function convergedOnPeers(lab: LabState, running: LabNode[]): boolean {
  const hs = running.map((n) => peerHealth(files(n).health));
  if (hs.some((h, i) => !h || h.pid !== running[i].agentPid || !h.vxlan || h.waiting || h.owned === 0)) return false;
  const table = JSON.stringify(hs[0]!.table);
  return running.every((n, i) => {
    const h = hs[i]!;
    const others = h.peers.filter((p) => p.name !== n.name && p.state === 'live').reduce((a, p) => a + p.blocks, 0);
    if (JSON.stringify(h.table) !== table || h.vxlan!.routes !== others) return false;
    return onNode(n, (nl) => nl.routes(4, { protocol: RTPROT_TETHER_VXLAN }).length) === others;
  });
}


async function startNode(lab: LabState, node: LabNode): Promise<void> {
  const f = files(node);
  mkdirSync(f.confDir, { recursive: true });
  writeFileSync(join(f.confDir, 'lab-overlay.conflist'), `${JSON.stringify(podNetwork(lab, node), null, 2)}\n`);
  if (onPeers(lab)) {
    // Ready when this process has written its health file with the VXLAN device up.
    await startAgent(lab, node, f, agentConfig(lab, node), () => { const h = peerHealth(f.health); return !!h && h.pid === node.agentPid && !!h.vxlan; }, 'bring up its VXLAN device');
    return;
  }
  const before = readNodeState(f.state)?.updated;
  // Ready when it has (re)published the node state.
  await startAgent(lab, node, f, agentConfig(lab, node), () => { const s = readNodeState(f.state); return !!s && s.updated !== before; }, 'publish its subnet');
}

const stopNode = (_lab: LabState, node: LabNode) => stopAgent(node);
const leaveNode = (lab: LabState, node: LabNode) => leaveAgent(lab, node, files(node));

export const vxlanMode: ModeDriver = {
  name: 'vxlan',
  startNode,
  stopNode,
  leaveNode,
  podNetwork,
  subnetOf: (lab, node) => {
    if (onPeers(lab)) { const h = peerHealth(files(node).health); return h ? `${h.owned} blocks` : undefined; }
    return existsSync(files(node).state) ? readNodeState(files(node).state)?.subnet : undefined;
  },
  setup: async (lab) => { if (onPeers(lab)) writePeerKey(lab); },
  converged(lab) {
    const running = lab.nodes.filter((n) => n.agentPid !== undefined);
    if (onPeers(lab)) return convergedOnPeers(lab, running);
    const subnets = new Map(running.map((n) => [n.name, readNodeState(files(n).state)?.subnet]));
    return running.every((n) => {
      const routed = onNode(n, (nl) => new Set(nl.routes(4).filter((r) => r.protocol === RTPROT_TETHER_VXLAN && r.dst).map((r) => formatCIDR(r.dst!))));
      return running.every((o) => o === n || (subnets.get(o.name) !== undefined && routed.has(subnets.get(o.name)!)));
    });
  },
};

export const vxlanFiles = files;

registerMode(vxlanMode.name, async () => vxlanMode);
