import { cniArg } from '../../lib/cni/env.js';
import { invalidConfig } from '../../lib/cni/errors.js';
import type { Context } from '../../lib/cni/skel.js';
import { parseMAC } from '../../lib/ip/mac.js';

/** The MAC the runtime asked for: runtimeConfig.mac, else args.cni.mac, else CNI_ARGS MAC. */
export function requestedMac(ctx: Context): Uint8Array | undefined {
  const rc = (ctx.conf.runtimeConfig as { mac?: unknown } | undefined)?.mac;
  const args = (ctx.conf.args as { cni?: { mac?: unknown } } | undefined)?.cni?.mac;
  const raw = rc ?? args ?? cniArg(ctx.args, 'MAC');
  if (raw === undefined || raw === '') return undefined;
  const mac = typeof raw === 'string' ? parseMAC(raw) : null;
  if (!mac) throw invalidConfig(rc !== undefined ? 'runtimeConfig.mac' : args !== undefined ? 'args.cni.mac' : 'CNI_ARGS MAC', 'must be a MAC address such as 02:42:ac:11:00:02', raw);
  return mac;
}
