import { CniError, ErrorCode } from '../../lib/cni/errors.js';
import type { Context } from '../../lib/cni/skel.js';
import { Netlink } from '../../lib/netlink/handle.js';
import type { Link } from '../../lib/netlink/link.js';
import { NetlinkError } from '../../lib/netlink/socket.js';
import { mark } from '../../lib/trace.js';
import { release } from './ipam.js';
import type { Rollback } from './rollback.js';

export interface VethSpec {
  /** The host end's name (hostVethName with the plugin's prefix). */
  hostName: string;
  /** The container end: CNI_IFNAME inside the namespace nsfd refers to. */
  ifname: string;
  nsfd: number;
  mtu?: number;
  /** The container end's MAC (the runtime's request); the kernel picks one when absent. */
  mac?: Uint8Array;
  hostMac?: Uint8Array;
  /** A bridge to put the host end on. */
  master?: number;
}

/**
 * Creates the pair with the container end born inside the container under its final name (no move,
 * no rename) and the host end up; pushes its removal (the peer goes with it) onto the rollback.
 */
export function createVeth(host: Netlink, ctx: Context, v: VethSpec, rollback: Rollback): Link {
  try {
    host.linkAdd({
      kind: 'veth', name: v.hostName, mtu: v.mtu, mac: v.hostMac, master: v.master, up: true,
      peer: { name: v.ifname, netnsFd: v.nsfd, mtu: v.mtu, mac: v.mac },
    });
  } catch (e) {
    if (e instanceof NetlinkError && e.code === 'EEXIST') {
      throw new CniError(ErrorCode.InvalidEnvironment, `host interface ${v.hostName} for ${ctx.args.containerID}/${ctx.args.ifname} already exists: is this attachment already set up?`, 'CNI_CONTAINERID');
    }
    throw e;
  }
  const link = host.linkByName(v.hostName);
  if (!link) throw new CniError(ErrorCode.Internal, `host interface ${v.hostName} vanished after creation`);
  rollback.push(() => { host.linkDel(link.index); });
  return link;
}

/**
 * Removes this attachment's veth by its host end, whose name derives from container ID and interface
 * name: the container end goes with it. The container's interface is never looked up by name, so a DEL
 * for an attachment that never came to be (an ADD refused because another container already has that
 * interface in the namespace, then the runtime's DEL) cannot take someone else's interface. Already
 * gone is fine.
 */
export function removeVeth(hostName: string): void {
  const host = Netlink.open();
  try {
    const veth = host.linkByName(hostName);
    if (veth?.kind === 'veth') host.linkDel(veth.index);
  } finally { host.close(); }
}

/**
 * DEL of a veth attachment: the address goes first and regardless of the namespace (a DEL must never
 * leak it), then the interface; whatever is already gone is fine. What lived on the host end (routes,
 * neighbour entries, the bridge port) goes with it.
 */
export async function deleteVethAttachment(ctx: Context, hostName: string): Promise<void> {
  mark('del');
  const ipamError = await release(ctx);
  mark('ipam');
  removeVeth(hostName);
  mark('removed');
  if (ipamError) throw ipamError;
}
