import { CniError, ErrorCode, invalidConfig } from '../../lib/cni/errors.js';
import type { Command } from '../../lib/cni/env.js';
import type { NetConf } from '../../lib/cni/types.js';
import { checkIpamSection, mtuField } from '../common/config.js';
import { hasIpam } from '../common/ipam.js';
import { parseIsolationOptions, type IsolationOptions } from '../common/isolation-config.js';

export interface BgpRouteConf extends NetConf, IsolationOptions {
  mtu?: number;
}

/** Options of tether-bridge that have no meaning on a routed link: refused, so nobody believes they took effect. */
const BRIDGE_ONLY = ['bridge', 'isGateway', 'isDefaultGateway', 'forceAddress', 'hairpinMode', 'promiscMode', 'portIsolation', 'vlan', 'vlanTrunk', 'internal'] as const;

/** Reads and checks tether-bgp-route's options: `mtu`, `ipam` (required), `dns`, `isolation`, `allowBridges`, `allowNetworks`. */
export function parseBgpRouteConf(conf: NetConf, command: Command): BgpRouteConf {
  // DEL and GC must work whatever the config says: they need only the IPAM section to release addresses.
  if (command === 'DEL' || command === 'GC') return { ...conf, mtu: undefined, ...parseIsolationOptions(conf, false) };
  const mtu = mtuField(conf);
  checkIpamSection(conf);
  if (!hasIpam(conf)) {
    throw invalidConfig('ipam', 'is required: a routed container needs an address (for example {"type": "tether-ipam", "ranges": [[{"subnet": "10.244.0.0/16"}]]})', conf.ipam);
  }
  if (conf.ipMasq === true) {
    throw new CniError(ErrorCode.UnsupportedField, 'unsupported field "ipMasq": tether-bgp-route does not masquerade; pod addresses are routed (announced over BGP by the node agent)', 'ipMasq=true');
  }
  for (const k of BRIDGE_ONLY) {
    if (conf[k] !== undefined && conf[k] !== false) {
      throw new CniError(ErrorCode.UnsupportedField, `unsupported field "${k}": tether-bgp-route attaches containers by routing, with no bridge; "${k}" is a tether-bridge option`, `${k}=${JSON.stringify(conf[k])}`);
    }
  }
  // icc off is a bridge's idea (its ports cannot talk); true, the default, means nothing to refuse.
  if (conf.icc !== undefined && conf.icc !== true) {
    throw new CniError(ErrorCode.UnsupportedField, 'unsupported field "icc": tether-bgp-route attaches containers by routing, with no bridge; "icc" is a tether-bridge option', `icc=${JSON.stringify(conf.icc)}`);
  }
  if (conf.dns !== undefined && (typeof conf.dns !== 'object' || conf.dns === null || Array.isArray(conf.dns))) throw invalidConfig('dns', 'must be an object such as {"nameservers": ["10.96.0.10"]}', conf.dns);
  return { ...conf, mtu, ...parseIsolationOptions(conf, true) };
}
