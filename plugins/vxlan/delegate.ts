import type { NetConf } from '../../lib/cni/types.js';
import { invalidConfig } from '../../lib/cni/errors.js';
import { parseCIDR } from '../../lib/ip/addr.js';
import type { NodeState } from '../../lib/node-state.js';
import { DEFAULT_NODE_STATE_FILE } from '../../lib/paths.js';

/** Fields of tether-vxlan's own config; everything else of the config is passed on to the bridge. */
const OWN = new Set(['type', 'stateFile', 'dataDir', 'delegate', 'ipam']);

export const DEFAULT_DATA_DIR = '/var/lib/cni/tether/vxlan';

type Obj = Record<string, unknown>;
const isObj = (v: unknown): v is Obj => typeof v === 'object' && v !== null && !Array.isArray(v);

export interface VxlanConf extends NetConf {
  stateFile: string;
  dataDir: string;
  delegate: Obj;
  ipamOverrides: Obj;
}

export function parseVxlanConf(conf: NetConf): VxlanConf {
  const stateFile = conf.stateFile ?? DEFAULT_NODE_STATE_FILE;
  if (typeof stateFile !== 'string' || !stateFile.startsWith('/')) throw invalidConfig('stateFile', 'must be an absolute path (tetherd\'s state file)', stateFile);
  const dataDir = conf.dataDir ?? DEFAULT_DATA_DIR;
  if (typeof dataDir !== 'string' || !dataDir.startsWith('/')) throw invalidConfig('dataDir', 'must be an absolute path', dataDir);
  const delegate = conf.delegate ?? {};
  if (!isObj(delegate)) throw invalidConfig('delegate', 'must be an object of tether-bridge options', delegate);
  for (const k of ['type', 'ipam', 'name', 'cniVersion']) {
    if (k in delegate) throw invalidConfig(`delegate.${k}`, 'is set by tether-vxlan and cannot be given');
  }
  const ipam = conf.ipam ?? {};
  if (!isObj(ipam)) throw invalidConfig('ipam', 'must be an object of tether-ipam options', ipam);
  for (const k of ['type', 'ranges', 'subnet', 'rangeStart', 'rangeEnd', 'gateway']) {
    if (k in ipam) throw invalidConfig(`ipam.${k}`, 'is set by tether-vxlan from the node subnet and cannot be given');
  }
  return { ...conf, stateFile, dataDir, delegate, ipamOverrides: ipam };
}

/**
 * The tether-bridge config tether-vxlan runs (Flannel's flannel plugin delegating to bridge): the
 * node's bridge as the pods' gateway, the overlay MTU, and tether-ipam host-local style on the node
 * subnet tetherd holds (one range, one block: the subnet is this node's alone, so its pod addresses
 * need no cluster-wide coordination), with a route to the whole pool through the bridge.
 */
export function bridgeConfig(c: VxlanConf, raw: Obj, s: NodeState): Obj {
  const subnet = parseCIDR(s.subnet);
  if (!subnet) throw invalidConfig('stateFile', `holds a node subnet that is not a CIDR (${s.subnet})`);
  const passed = Object.fromEntries(Object.entries(raw).filter(([k]) => !OWN.has(k)));
  return {
    ...passed,
    type: 'tether-bridge',
    bridge: 'cni0',
    isGateway: true,
    mtu: s.mtu,
    ...c.delegate,
    ipam: {
      dataDir: `${c.dataDir}/ipam`,
      ...c.ipamOverrides,
      type: 'tether-ipam',
      ranges: [[{ subnet: s.subnet }]],
      routes: [{ dst: s.pool }, ...((c.ipamOverrides.routes as unknown[] | undefined) ?? [])],
      blockSize: { v4: subnet.prefix, v6: 122 },
      nodeName: s.node,
    },
  };
}
