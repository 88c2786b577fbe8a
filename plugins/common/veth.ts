import { CniError, ErrorCode } from '../../lib/cni/errors.js';
import type { Context } from '../../lib/cni/skel.js';
import { Netlink } from '../../lib/netlink/handle.js';
import type { Link } from '../../lib/netlink/link.js';
import { NetlinkError } from '../../lib/netlink/socket.js';
import { sysctlSet } from '../../lib/netns/sysctl.js';
import { mark } from '../../lib/trace.js';
import { release } from './ipam.js';
import type { Rollback } from './rollback.js';

export interface VethSpec {
  /** The host end's name (hostVethName with the plugin's prefix). */
  hostName: string;
  /** The container end: CNI_IFNAME inside the namespace nsfd refers to. */
  ifname: string;
  /** The container's namespace; absent: the end stays beside the host end (Docker moves it itself). */
  nsfd?: number;
  mtu?: number;
  /** The container end's MAC (the runtime's request); the kernel picks one when absent. */
  mac?: Uint8Array;
  hostMac?: Uint8Array;
  /** A bridge to put the host end on. */
  master?: number;
  /**
   * false: the host end gets no IPv6 at all (a bridge port needs none: bridging is L2). Every IPv6
   * device adds its own routes to the node's IPv6 table, which the kernel walks on each device event,
   * so with 500 ports a new port cost 50-65 ms instead of 8-14 ms (measured here).
   */
  hostIPv6?: boolean;
}

/**
 * Creates the pair with the container end born inside the container under its final name (no move,
 * no rename) and the host end up; pushes its removal (the peer goes with it) onto the rollback.
 */
export function createVeth(host: Netlink, attachment: string, v: VethSpec, rollback: Rollback): Link {
  const noIPv6 = v.hostIPv6 === false;
  try {
    host.linkAdd({
      // Without IPv6 the end comes up only once it is off: up at creation would start IPv6 on it first.
      kind: 'veth', name: v.hostName, mtu: v.mtu, mac: v.hostMac, master: v.master, up: !noIPv6,
      peer: { name: v.ifname, netnsFd: v.nsfd, mtu: v.mtu, mac: v.mac },
    });
  } catch (e) {
    if (e instanceof NetlinkError && e.code === 'EEXIST') {
      throw new CniError(ErrorCode.InvalidEnvironment, `host interface ${v.hostName} for ${attachment} already exists: is this attachment already set up?`, 'CNI_CONTAINERID');
    }
    throw e;
  }
  let link = host.linkByName(v.hostName);
  if (!link) throw new CniError(ErrorCode.Internal, `host interface ${v.hostName} vanished after creation`);
  const index = link.index;
  rollback.push(() => { host.linkDel(index); });
  if (noIPv6) {
    disableIPv6(v.hostName);
    host.linkSet(index, { up: true });
    link = host.linkByIndex(index)!;
  }
  return link;
}

/** IPv6 off on an interface of the caller's namespace; a kernel without IPv6 has nothing to turn off. */
function disableIPv6(ifname: string): void {
  try { sysctlSet(`net/ipv6/conf/${ifname}/disable_ipv6`, 1); } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
  }
}

/** A host-side link of an attachment besides its veth, by name and the kind it must be to be ours. */
export interface HostLink { name: string; kind: string }

/**
 * Removes this attachment's veth by its host end, whose name derives from container ID and interface
 * name: the container end goes with it. The container's interface is never looked up by name, so a DEL
 * for an attachment that never came to be (an ADD refused because another container already has that
 * interface in the namespace, then the runtime's DEL) cannot take someone else's interface. Already
 * gone is fine. `alongWith` are the attachment's other host links (its ifb), each of the kind named:
 * deleted in the same kernel batch, which costs what deleting the veth alone does.
 */
export function removeVeth(hostName: string, alongWith: HostLink[] = []): void {
  Netlink.within((host) => {
    const doomed = [{ name: hostName, kind: 'veth' }, ...alongWith].map((l) => {
      const link = host.linkByName(l.name);
      return link?.kind === l.kind ? link.index : null;
    }).filter((i): i is number => i !== null);
    host.linksDelTogether(doomed);
  });
}

/**
 * DEL of a veth attachment: the address goes first and regardless of the namespace (a DEL must never
 * leak it), then the interface; whatever is already gone is fine. What lived on the host end (routes,
 * neighbour entries, the bridge port) goes with it.
 */
export async function deleteVethAttachment(ctx: Context, hostName: string, alongWith: HostLink[] = []): Promise<void> {
  mark('del');
  const ipamError = await release(ctx);
  mark('ipam');
  removeVeth(hostName, alongWith);
  mark('removed');
  if (ipamError) throw ipamError;
}
