import { closeSync } from 'node:fs';
import { CniError, ErrorCode } from '../../lib/cni/errors.js';
import type { Context } from '../../lib/cni/skel.js';
import type { Result } from '../../lib/cni/types.js';
import { Netlink } from '../../lib/netlink/handle.js';
import { mark } from '../../lib/trace.js';
import { openContainer, refuseTakenInterface } from './netns.js';
import { Rollback } from './rollback.js';

/** What an ADD works with: the container's namespace, a handle on the host, and what to undo on failure. */
export interface AttachScope {
  nsfd: number;
  host: Netlink;
  rollback: Rollback;
}

/**
 * The frame of a veth plugin's ADD: opens the container's namespace, refuses an interface name already
 * taken there and an attachment whose host end already exists (both before anything is touched, so a
 * repeated ADD, even into a new namespace, leaves the first attachment and its address intact), runs
 * the plugin's steps and, when one fails, undoes every step that pushed its undo, in reverse.
 */
export async function attach(ctx: Context<any>, hostName: string, steps: (s: AttachScope) => Promise<Result>): Promise<Result> {
  const nsfd = openContainer(ctx);
  try {
    return await Netlink.within(async (host) => {
      const rollback = new Rollback();
      try {
        refuseTakenInterface(ctx, nsfd);
        if (host.linkByName(hostName)) {
          throw new CniError(ErrorCode.InvalidEnvironment, `host interface ${hostName} for ${ctx.args.containerID}/${ctx.args.ifname} already exists: this attachment is already set up`, 'CNI_CONTAINERID');
        }
        mark('attach: checked');
        const result = await steps({ nsfd, host, rollback });
        rollback.commit();
        return result;
      } catch (e) {
        await rollback.run(ctx.log);
        throw e;
      }
    });
  } finally {
    closeSync(nsfd);
    mark('closed');
  }
}
