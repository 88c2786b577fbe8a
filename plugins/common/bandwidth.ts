import { CniError, ErrorCode } from '../../lib/cni/errors.js';
import type { Context } from '../../lib/cni/skel.js';
import type { Result } from '../../lib/cni/types.js';
import { parseBandwidth, type BandwidthLimits } from '../../lib/bandwidth/limits.js';
import { Netlink } from '../../lib/netlink/handle.js';
import { hostVethName } from './names.js';
import type { Rollback } from './rollback.js';
import type { HostLink } from './veth.js';

// The bandwidth capability for any plugin: the main plugins in the same exec as their ADD, and
// tether-bandwidth chained after any plugin, from its prevResult. The shaping code is loaded only by an
// exec that has limits to apply, check or remove: most ADDs and DELs have none.
const shaping = () => import('../../lib/bandwidth/index.js');

/** runtimeConfig.bandwidth, else (for tether-bandwidth) the same fields at the top of the plugin's config. */
export function requestedBandwidth(ctx: Pick<Context, 'conf'>, topLevel = false): BandwidthLimits | null {
  const rc = ctx.conf.runtimeConfig as Record<string, unknown> | undefined;
  if (rc?.bandwidth !== undefined) return parseBandwidth(rc.bandwidth);
  return topLevel ? parseBandwidth(ctx.conf, 'bandwidth') : null;
}

/** The egress device of one attachment, found again at DEL from the attachment alone. */
export const ifbName = (ctx: Context) => hostVethName(ctx.args.containerID, ctx.args.ifname, 'tbw');

/** The host end of the container's veth among the result's host-side interfaces. */
export function hostVethOf(result: Result): string | undefined {
  const names = (result.interfaces ?? []).filter((i) => !i.sandbox).map((i) => i.name);
  return Netlink.within((nl) => names.find((n) => nl.linkByName(n)?.kind === 'veth'));
}

export async function shapeTraffic(ctx: Context, result: Result, limits: BandwidthLimits | null, rollback?: Rollback): Promise<void> {
  if (!limits) return;
  const host = hostVethOf(result);
  if (!host) throw new CniError(ErrorCode.InvalidNetworkConfig, 'bandwidth: the result lists no host-side veth to shape (bandwidth needs a veth attachment)', JSON.stringify(result.interfaces ?? []));
  const { applyBandwidth, removeBandwidth } = await shaping();
  rollback?.push(() => removeBandwidth(host, ifbName(ctx)));
  applyBandwidth(host, ifbName(ctx), limits);
}

/**
 * The host links shaping gave an attachment, for a main plugin's DEL to delete with the veth in one
 * kernel batch (removeVeth): its egress device, when it has limits. The qdiscs on the veth go with it.
 */
export const shapingLinks = (ctx: Context): HostLink[] => [{ name: ifbName(ctx), kind: 'ifb' }];

/**
 * DEL of the chained tether-bandwidth, whose veth stays (the main plugin's DEL runs after it): the
 * egress device, and the host end's qdiscs when a prevResult names it.
 */
export async function unshapeTraffic(ctx: Context): Promise<void> {
  const host = ctx.prevResult ? hostVethOf(ctx.prevResult) : undefined;
  if (!host && !Netlink.within((nl) => nl.linkByName(ifbName(ctx)))) return;
  (await shaping()).removeBandwidth(host, ifbName(ctx));
}

export async function checkShaping(ctx: Context, prev: Result, limits: BandwidthLimits | null): Promise<void> {
  if (!limits) return;
  const host = hostVethOf(prev);
  const problems = host ? (await shaping()).checkBandwidth(host, ifbName(ctx), limits) : ['the result lists no host-side veth'];
  if (problems.length) throw new CniError(ErrorCode.CheckFailed, `CHECK of ${ctx.args.containerID}/${ctx.args.ifname} failed: ${problems.join('; ')}`);
}
