import { CniError, ErrorCode } from '../../lib/cni/errors.js';
import { delegate } from '../../lib/cni/invoke.js';
import type { Context } from '../../lib/cni/skel.js';
import type { NetConf, Result } from '../../lib/cni/types.js';
import type { Rollback } from './rollback.js';

/** An L3 network has an IPAM plugin; `"ipam": {}` or none is L2 only. */
export const hasIpam = (c: NetConf) => !!c.ipam && typeof c.ipam.type === 'string' && c.ipam.type !== '';

/**
 * IPAM ADD, with its release pushed onto the rollback. Plugins call it before creating anything on the
 * host, so a bad IPAM section or an exhausted range creates nothing at all.
 */
export async function allocate(ctx: Context, rollback: Rollback): Promise<Result> {
  const type = ctx.conf.ipam!.type;
  const r = await delegate('ADD', type, ctx);
  rollback.push(async () => { await delegate('DEL', type, ctx); });
  if (!r?.ips?.length) throw new CniError(ErrorCode.Internal, `IPAM plugin "${type}" returned no addresses`);
  return r;
}

/** IPAM DEL that never stops the caller: the error comes back to be thrown after the interface is gone. */
export async function release(ctx: Context): Promise<unknown> {
  if (!hasIpam(ctx.conf)) return undefined;
  try { await delegate('DEL', ctx.conf.ipam!.type, ctx); } catch (e) { return e; }
  return undefined;
}

/** STATUS and GC of an interface plugin are its IPAM's. */
export const ipamForwarders = {
  async status(ctx: Context) {
    if (hasIpam(ctx.conf)) await delegate('STATUS', ctx.conf.ipam!.type, ctx);
  },
  async gc(ctx: Context) {
    if (hasIpam(ctx.conf)) await delegate('GC', ctx.conf.ipam!.type, ctx);
  },
};

/** CHECK of the IPAM plugin, when there is one. */
export async function checkIpam(ctx: Context): Promise<void> {
  if (hasIpam(ctx.conf)) await delegate('CHECK', ctx.conf.ipam!.type, ctx);
}
