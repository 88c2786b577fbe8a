import { join } from 'node:path';
import { formatCIDR, parseCIDR, parseIP, type CIDR } from '../lib/ip/addr.js';
import * as C from '../lib/netlink/constants.js';
import { parseMAC } from '../lib/ip/mac.js';
import { onNode, registerMode, type LabNode, type LabState, type ModeDriver } from '../lab/index.js';
import { apply } from '../tetherd/dataplane.js';
import { installOps } from '../tetherd/plan.js';

/**
 * The reference datapaths, built on the same lab (nodes, underlay, iperf3 runs) as tether's, so the
 * throughput bench can say how much of the overlay's cost is the kernel's and how much is ours:
 *
 * - `ref-flannel`: what flanneld's VXLAN backend and the flannel CNI program (a VXLAN device with VNI 1 on
 *   port 8472, learning off, MTU underlay - 50, the subnet's .0 on it; per remote node a permanent
 *   neighbour, an FDB entry and an onlink route), with pods on the reference `bridge` plugin
 *   (isGateway, isDefaultGateway, hairpin) and `host-local` on the node's /24, as flannel delegates.
 * - `ref-routed`: plain routed veths: the reference `ptp` plugin with `host-local` on the node's /26 and,
 *   per remote node, a route for its block via its underlay address (what BIRD installs for Calico).
 *
 * No agent runs: nodes are programmed statically when they start, each new node with every node already up.
 */
const REF_CNI = process.env.BENCH_REF_DIR ?? '/usr/lib/cni';
const VXLAN_DEV = 'flannel.1';

const nodeIndex = (node: LabNode) => Number(node.name.slice(1));
const flannelSubnet = (node: LabNode) => parseCIDR(`10.244.${nodeIndex(node)}.0/24`)!;
/** Node i's /26: the i-th block of 10.244.0.0/16 (1-based). */
function routedBlock(node: LabNode): CIDR {
  const offset = (nodeIndex(node) - 1) * 64;
  return parseCIDR(`10.244.${Math.floor(offset / 256)}.${offset % 256}/26`)!;
}
const vtepMAC = (node: LabNode) => `0e:2a:00:00:00:${nodeIndex(node).toString(16).padStart(2, '0')}`;


/** Nodes programmed so far, per lab (the bench builds and removes these labs in its own process). */
const up = new Map<string, Set<string>>();
const started = (lab: LabState) => lab.nodes.filter((n) => up.get(lab.prefix)?.has(n.name));

function hostLocal(node: LabNode, subnet: CIDR, routes?: { dst: string }[]) {
  return { type: 'host-local', ranges: [[{ subnet: formatCIDR(subnet) }]], routes, dataDir: join(node.dir, 'ipam') };
}

/** The node's flannel.1 and, both ways, the VXLAN triple to every node already up. */
function startFlannelNode(lab: LabState, node: LabNode): void {
  onNode(node, (nl) => {
    const eth0 = nl.linkByName('eth0')!;
    nl.linkAdd({
      kind: 'vxlan', name: VXLAN_DEV, mac: parseMAC(vtepMAC(node))!,
      mtu: eth0.mtu - 50,
      vxlan: { vni: 1, local: parseIP(node.underlayIP)!, dev: eth0.index, port: 8472, learning: false },
    });
    const dev = nl.linkByName(VXLAN_DEV)!;
    nl.addrAdd(dev.index, { ip: flannelSubnet(node).ip, prefix: 32 });
    nl.linkSet(dev.index, { up: true });
  });
  for (const other of started(lab)) {
    programFlannel(node, other);
    programFlannel(other, node);
  }
}

function programFlannel(on: LabNode, peer: LabNode): void {
  onNode(on, (nl) => {
    const devices = { vxlan: nl.linkByName(VXLAN_DEV)!.index, underlay: nl.linkByName('eth0')!.index };
    const subnet = flannelSubnet(peer);
    for (const op of installOps({ kind: 'vxlan', subnet, gateway: subnet.ip, mac: vtepMAC(peer), remote: parseIP(peer.underlayIP)! })) apply(nl, devices, op);
  });
}

function startRoutedNode(lab: LabState, node: LabNode): void {
  const route = (on: LabNode, peer: LabNode) => onNode(on, (nl) => nl.routeReplace({
    family: 4, dst: routedBlock(peer), gateway: parseIP(peer.underlayIP)!, oif: nl.linkByName('eth0')!.index, protocol: C.RTPROT_STATIC, scope: C.RT_SCOPE_UNIVERSE,
  }));
  for (const other of started(lab)) { route(node, other); route(other, node); }
}

function referenceMode(name: string, start: (lab: LabState, node: LabNode) => void, podNetwork: ModeDriver['podNetwork'], subnet: (node: LabNode) => CIDR): ModeDriver {
  return {
    name,
    namePrefix: 'tbr',
    pluginDirs: [REF_CNI],
    async startNode(lab, node) {
      start(lab, node);
      if (!up.has(lab.prefix)) up.set(lab.prefix, new Set());
      up.get(lab.prefix)!.add(node.name);
    },
    async stopNode(lab, node) { up.get(lab.prefix)?.delete(node.name); },
    async leaveNode() { throw new Error(`${name}: a reference lab has no agent to leave with`); },
    podNetwork,
    subnetOf: (_lab, node) => formatCIDR(subnet(node)),
    converged: () => true,
  };
}

export const flannelReference = referenceMode('ref-flannel', startFlannelNode, (_lab, node) => ({
  cniVersion: '1.0.0',
  name: 'ref-flannel',
  plugins: [{ type: 'bridge', bridge: 'cni0', isGateway: true, isDefaultGateway: true, hairpinMode: true, ipMasq: false, mtu: 1450, ipam: hostLocal(node, flannelSubnet(node)) }],
}), flannelSubnet);

export const routedReference = referenceMode('ref-routed', startRoutedNode, (_lab, node) => ({
  cniVersion: '1.0.0',
  name: 'ref-routed',
  plugins: [{ type: 'ptp', ipMasq: false, ipam: hostLocal(node, routedBlock(node), [{ dst: '0.0.0.0/0' }]) }],
}), routedBlock);

registerMode(flannelReference.name, async () => flannelReference);
registerMode(routedReference.name, async () => routedReference);
