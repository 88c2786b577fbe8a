import { CniError, ErrorCode } from '../../lib/cni/errors.js';
import type { Context } from '../../lib/cni/skel.js';
import { Netlink } from '../../lib/netlink/handle.js';
import { NetnsNotFoundError, openNetns } from '../../lib/netns/netns.js';

/** A descriptor on CNI_NETNS; a namespace that does not exist is the runtime's mistake (code 4). */
export function openContainer(ctx: Context): number {
  try {
    return openNetns(ctx.args.netns);
  } catch (e) {
    if (e instanceof NetnsNotFoundError) throw new CniError(ErrorCode.InvalidEnvironment, `CNI_NETNS ${ctx.args.netns} does not exist`, 'CNI_NETNS');
    throw e;
  }
}

/** Refuse before touching anything: a second ADD must not disturb the first one's interface or address. */
export function refuseTakenInterface(ctx: Context, nsfd: number): void {
  Netlink.within({ fd: nsfd }, (nl) => {
    if (nl.linkByName(ctx.args.ifname)) throw new CniError(ErrorCode.InvalidEnvironment, `interface ${ctx.args.ifname} already exists in ${ctx.args.netns}`, 'CNI_IFNAME');
  });
}
