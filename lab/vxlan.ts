import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { readNodeState } from '../lib/node-state.js';
import { RTPROT_TETHER_VXLAN } from '../lib/route-protocols.js';
import { formatCIDR } from '../lib/ip/addr.js';
import { onNode } from './multinode.js';
import { registerMode, type ModeDriver } from './modes.js';
import type { LabNode, LabState } from './types.js';
import { leaveAgent, startAgent, stopAgent } from './tetherd.js';

/** The VXLAN mode: a tetherd per node (in the node's namespace), pods on tether-vxlan. */
const files = (node: LabNode) => ({
  config: join(node.dir, 'tetherd.json'),
  state: join(node.dir, 'vxlan.json'),
  log: join(node.dir, 'tetherd.log'),
  health: join(node.dir, 'health.json'),
  /** The pod network as a conflist, for tetherd's IPAM metrics and `cnictl status --conf-dir`. */
  confDir: join(node.dir, 'net.d'),
  cni: join(node.dir, 'cni'),
});

export function agentConfig(lab: LabState, node: LabNode): Record<string, unknown> {
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

const podNetwork = (_lab: LabState, node: LabNode): Record<string, unknown> => ({
  cniVersion: '1.0.0',
  name: 'lab-overlay',
  plugins: [{ type: 'tether-vxlan', stateFile: files(node).state, dataDir: files(node).cni, delegate: { isDefaultGateway: true } }],
});


async function startNode(lab: LabState, node: LabNode): Promise<void> {
  const f = files(node);
  mkdirSync(f.confDir, { recursive: true });
  writeFileSync(join(f.confDir, 'lab-overlay.conflist'), `${JSON.stringify(podNetwork(lab, node), null, 2)}\n`);
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
  subnetOf: (_lab, node) => (existsSync(files(node).state) ? readNodeState(files(node).state)?.subnet : undefined),
  converged(lab) {
    const running = lab.nodes.filter((n) => n.agentPid !== undefined);
    const subnets = new Map(running.map((n) => [n.name, readNodeState(files(n).state)?.subnet]));
    return running.every((n) => {
      const routed = onNode(n, (nl) => new Set(nl.routes(4).filter((r) => r.protocol === RTPROT_TETHER_VXLAN && r.dst).map((r) => formatCIDR(r.dst!))));
      return running.every((o) => o === n || (subnets.get(o.name) !== undefined && routed.has(subnets.get(o.name)!)));
    });
  },
};

export const vxlanFiles = files;

registerMode(vxlanMode.name, async () => vxlanMode);
