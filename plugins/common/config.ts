import { invalidConfig } from '../../lib/cni/errors.js';
import type { NetConf } from '../../lib/cni/types.js';

/** Each named field, when present, must be a boolean (code 7 naming it otherwise). */
export function requireBooleans(conf: NetConf, keys: readonly string[]): void {
  for (const k of keys) {
    if (conf[k] !== undefined && typeof conf[k] !== 'boolean') throw invalidConfig(k, 'must be true or false', conf[k]);
  }
}

/** `mtu`: absent or 0 is the kernel's default. */
export function mtuField(conf: NetConf): number | undefined {
  if (conf.mtu === undefined || conf.mtu === 0) return undefined;
  if (!Number.isInteger(conf.mtu) || (conf.mtu as number) < 68 || (conf.mtu as number) > 65535) throw invalidConfig('mtu', 'must be an integer from 68 to 65535', conf.mtu);
  return conf.mtu as number;
}

/** The `ipam` section's shape; its content is the IPAM plugin's to check. */
export function checkIpamSection(conf: NetConf): void {
  if (conf.ipam !== undefined && (typeof conf.ipam !== 'object' || conf.ipam === null)) throw invalidConfig('ipam', 'must be an object', conf.ipam);
  if (conf.ipam && Object.keys(conf.ipam).length && typeof conf.ipam.type !== 'string') throw invalidConfig('ipam.type', 'is required when "ipam" is set', conf.ipam.type);
}
