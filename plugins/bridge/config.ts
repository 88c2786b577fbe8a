import { CniError, ErrorCode, invalidConfig } from '../../lib/cni/errors.js';
import type { Command } from '../../lib/cni/env.js';
import type { NetConf } from '../../lib/cni/types.js';
import { ifnameProblem } from '../../lib/cni/validate.js';

export interface BridgeConf extends NetConf {
  bridge: string;
  isGateway: boolean;
  isDefaultGateway: boolean;
  forceAddress: boolean;
  ipMasq: boolean;
  mtu?: number;
  hairpinMode: boolean;
  promiscMode: boolean;
  portIsolation: boolean;
  enabledad: boolean;
  disableContainerInterface: boolean;
}

const BOOLS = ['isGateway', 'isDefaultGateway', 'forceAddress', 'ipMasq', 'hairpinMode', 'promiscMode', 'portIsolation', 'enabledad', 'disableContainerInterface', 'macspoofchk'] as const;

/** Reads and checks the reference bridge's options; anything tether cannot honour is refused, never ignored. */
export function parseBridgeConf(conf: NetConf, command: Command): BridgeConf {
  for (const k of BOOLS) {
    if (conf[k] !== undefined && typeof conf[k] !== 'boolean') throw invalidConfig(k, 'must be true or false', conf[k]);
  }
  const bridge = conf.bridge ?? 'cni0';
  if (typeof bridge !== 'string') throw invalidConfig('bridge', 'must be an interface name', bridge);
  const problem = ifnameProblem(bridge);
  if (problem) throw invalidConfig('bridge', problem, bridge);
  let mtu: number | undefined;
  if (conf.mtu !== undefined && conf.mtu !== 0) {
    if (!Number.isInteger(conf.mtu) || (conf.mtu as number) < 68 || (conf.mtu as number) > 65535) throw invalidConfig('mtu', 'must be an integer from 68 to 65535', conf.mtu);
    mtu = conf.mtu as number;
  }
  const c: BridgeConf = {
    ...conf,
    bridge,
    mtu,
    isDefaultGateway: conf.isDefaultGateway === true,
    isGateway: conf.isGateway === true || conf.isDefaultGateway === true,
    forceAddress: conf.forceAddress === true,
    ipMasq: conf.ipMasq === true,
    hairpinMode: conf.hairpinMode === true,
    promiscMode: conf.promiscMode === true,
    portIsolation: conf.portIsolation === true,
    enabledad: conf.enabledad === true,
    disableContainerInterface: conf.disableContainerInterface === true,
  };
  // DEL and GC must work whatever the config says, so option refusals apply to ADD, CHECK and STATUS.
  if (command === 'DEL' || command === 'GC') return c;
  if (c.hairpinMode && c.promiscMode) throw invalidConfig('hairpinMode', 'cannot be combined with promiscMode (promiscuous mode already reflects frames); set one of them');
  if (c.disableContainerInterface && conf.ipam && Object.keys(conf.ipam).length) throw invalidConfig('disableContainerInterface', 'cannot be combined with "ipam": an address needs the interface up');
  for (const k of ['vlan', 'vlanTrunk', 'preserveDefaultVlan'] as const) {
    if (conf[k] !== undefined && conf[k] !== 0 && conf[k] !== false) {
      throw new CniError(ErrorCode.UnsupportedField, `unsupported field "${k}": bridge VLANs need VLAN filtering, which this kernel does not provide (CONFIG_BRIDGE_VLAN_FILTERING is off)`, `${k}=${JSON.stringify(conf[k])}`);
    }
  }
  if (conf.macspoofchk === true) {
    throw new CniError(ErrorCode.UnsupportedField, 'unsupported field "macspoofchk": tether-bridge does not implement MAC spoof checking yet', 'macspoofchk=true');
  }
  if (conf.ipMasqBackend !== undefined && conf.ipMasqBackend !== 'nftables') {
    throw new CniError(ErrorCode.UnsupportedField, `unsupported field "ipMasqBackend": tether-bridge masquerades with nftables only`, `ipMasqBackend=${JSON.stringify(conf.ipMasqBackend)}`);
  }
  if (conf.ipam !== undefined && (typeof conf.ipam !== 'object' || conf.ipam === null)) throw invalidConfig('ipam', 'must be an object', conf.ipam);
  if (conf.ipam && Object.keys(conf.ipam).length && typeof conf.ipam.type !== 'string') throw invalidConfig('ipam.type', 'is required when "ipam" is set', conf.ipam.type);
  return c;
}

/** An L3 network has an IPAM plugin; `"ipam": {}` or none is L2 only. */
export const hasIpam = (c: BridgeConf) => !!c.ipam && typeof c.ipam.type === 'string' && c.ipam.type !== '';
