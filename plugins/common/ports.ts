import { CniError, ErrorCode } from '../../lib/cni/errors.js';
import type { Context } from '../../lib/cni/skel.js';
import type { Attachment, Result } from '../../lib/cni/types.js';
import { parseCIDR, type CIDR } from '../../lib/ip/addr.js';
import { NFPROTO_INET, nftGetTable } from '../../lib/netlink/nftables.js';
import type { PortOwner, PortTarget } from '../../lib/portmap/index.js';
import { parsePortMappings, type PortMapping } from '../../lib/portmap/mapping.js';
import { PORTS_TABLE } from '../../lib/portmap/ruleset.js';
import type { Rollback } from './rollback.js';
import { mark } from '../../lib/trace.js';

// The portMappings capability for any plugin: the main plugins in the same exec as their ADD, and
// tether-portmap chained after any plugin, from its prevResult. The port table's code is loaded only
// by an exec that has ports to publish, check or remove: most ADDs and DELs have none.
const portTable = () => import('../../lib/portmap/index.js');

/** The mappings the runtime asked for (runtimeConfig.portMappings); [] when none. */
export function requestedPorts(ctx: Context): PortMapping[] {
  const rc = ctx.conf.runtimeConfig as Record<string, unknown> | undefined;
  return parsePortMappings(rc?.portMappings);
}

export const portOwner = (ctx: Context): PortOwner => ({ network: ctx.conf.name, containerID: ctx.args.containerID, ifname: ctx.args.ifname });

/** Where the mappings point: the container's addresses in the result, the host-side interfaces it lists. */
export function portTarget(ctx: Context, result: Result): PortTarget {
  const ifaces = result.interfaces ?? [];
  const inSandbox = (i?: number) => i === undefined || ifaces[i] === undefined || ifaces[i].sandbox !== undefined;
  const addresses = (result.ips ?? []).filter((ip) => inSandbox(ip.interface)).map((ip) => parseCIDR(ip.address)).filter((c): c is CIDR => c !== null);
  return { owner: portOwner(ctx), addresses, hostInterfaces: ifaces.filter((i) => !i.sandbox).map((i) => i.name) };
}

/** ADD: publishes the ports; a later failing step of the same ADD takes them back. */
export async function publishPorts(ctx: Context, result: Result, rollback?: Rollback): Promise<void> {
  const mappings = requestedPorts(ctx);
  if (!mappings.length) return;
  const { addPortMappings, removePortMappings } = await portTable();
  mark('ports: loaded');
  const { flushed } = addPortMappings(portTarget(ctx, result), mappings);
  rollback?.push(() => { removePortMappings(portOwner(ctx)); });
  ctx.log.info('ports published', { ports: mappings.length, udpConntrackFlushed: flushed });
}

/** DEL: whatever this attachment published, whatever the DEL's own config says. */
export async function unpublishPorts(ctx: Context): Promise<void> {
  // Every DEL comes here: on a node where no port was ever published it stops at one lookup, before the
  // port table's code is loaded. removePortMappings itself needs no such check: with no table its
  // lookups find nothing.
  if (!nftGetTable(NFPROTO_INET, PORTS_TABLE)) return;
  const { removePortMappings } = await portTable();
  mark('del: ports loaded');
  removePortMappings(portOwner(ctx));
}

/** CHECK: every requested mapping is in place, ours, and points at the container. */
export async function checkPorts(ctx: Context, prev: Result): Promise<void> {
  const problems = (await portTable()).checkPortMappings(portTarget(ctx, prev), requestedPorts(ctx));
  if (problems.length) throw new CniError(ErrorCode.CheckFailed, `CHECK of ${ctx.args.containerID}/${ctx.args.ifname} failed: ${problems.join('; ')}`);
}

export async function gcPorts(ctx: Context, valid: Attachment[]): Promise<void> {
  (await portTable()).gcPortMappings(ctx.conf.name, valid);
}
