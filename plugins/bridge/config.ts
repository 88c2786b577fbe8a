import { CniError, ErrorCode, invalidConfig } from '../../lib/cni/errors.js';
import type { Command } from '../../lib/cni/env.js';
import type { NetConf } from '../../lib/cni/types.js';
import { ifnameProblem } from '../../lib/cni/validate.js';
import { checkIpamSection, mtuField, requireBooleans } from '../common/config.js';
import { parseIsolationOptions, type IsolationOptions } from '../common/isolation-config.js';

export interface BridgeConf extends NetConf, IsolationOptions {
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
  /** No way off the host: no default route, no masquerade, nothing forwarded to or from other interfaces. */
  internal: boolean;
  /** Inter-container communication on this bridge (Docker's enable_icc); false isolates every port. */
  icc: boolean;
}

const BOOLS = ['internal', 'icc', 'isGateway', 'isDefaultGateway', 'forceAddress', 'ipMasq', 'hairpinMode', 'promiscMode', 'portIsolation', 'enabledad', 'disableContainerInterface', 'macspoofchk'] as const;

/** Reads and checks the reference bridge's options; anything tether cannot honour is refused, never ignored. */
export function parseBridgeConf(conf: NetConf, command: Command): BridgeConf {
  requireBooleans(conf, BOOLS);
  const bridge = conf.bridge ?? 'cni0';
  if (typeof bridge !== 'string') throw invalidConfig('bridge', 'must be an interface name', bridge);
  const problem = ifnameProblem(bridge);
  if (problem) throw invalidConfig('bridge', problem, bridge);
  const mtu = mtuField(conf);
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
    internal: conf.internal === true,
    icc: conf.icc !== false,
    ...parseIsolationOptions(conf, command !== 'DEL' && command !== 'GC'),
  };
  // icc off: the bridge forwards nothing between its ports either.
  if (!c.icc) c.portIsolation = true;
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
  checkIpamSection(conf);
  return c;
}
