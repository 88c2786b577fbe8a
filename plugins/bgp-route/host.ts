import { CniError, ErrorCode } from '../../lib/cni/errors.js';
import { formatCIDR, ipEqual, type CIDR, type Family } from '../../lib/ip/addr.js';
import { formatMAC } from '../../lib/ip/mac.js';
import * as C from '../../lib/netlink/constants.js';
import type { Netlink } from '../../lib/netlink/handle.js';
import type { Link } from '../../lib/netlink/link.js';
import type { Route } from '../../lib/netlink/route.js';
import { NetlinkError } from '../../lib/netlink/socket.js';
import { sysctlGet, sysctlSet } from '../../lib/netns/sysctl.js';
import { permanentNeighbor } from '../common/container.js';
import { forwardingSysctls } from '../common/forwarding.js';
import { RTPROT_TETHER_POD } from '../../lib/route-protocols.js';

/**
 * The host end's settings. proxy_arp lets the host answer for 169.254.1.1 should a container ever ask
 * (tether's containers carry a static entry and never need to); IPv6 DAD and router advertisements are
 * off, and accept_dad is set before IPv6 comes up so the link-local gateway is never tentative.
 */
function hostEndSysctls(name: string, families: Set<Family>): [string, number][] {
  const out: [string, number][] = [];
  if (families.has(4)) out.push([`net/ipv4/conf/${name}/proxy_arp`, 1], [`net/ipv4/neigh/${name}/proxy_delay`, 0], [`net/ipv4/conf/${name}/forwarding`, 1]);
  if (families.has(6)) {
    // EUI-64 (mode 0) even where the node defaults to stable-privacy: the link-local must be the gateway address.
    out.push([`net/ipv6/conf/${name}/addr_gen_mode`, 0], [`net/ipv6/conf/${name}/accept_dad`, 0], [`net/ipv6/conf/${name}/accept_ra`, 0], [`net/ipv6/conf/${name}/disable_ipv6`, 0],
      [`net/ipv6/conf/${name}/proxy_ndp`, 1], [`net/ipv6/conf/${name}/forwarding`, 1]);
  }
  return out;
}

/** Must run before the container end comes up: that is when the host end gets carrier and its link-local address. */
export function configureHostEnd(name: string, families: Set<Family>): void {
  for (const [key, value] of hostEndSysctls(name, families)) sysctlSet(key, value);
}

export function hostRoute(link: Link, dst: CIDR): Route {
  return { family: dst.ip.family, dst, oif: link.index, protocol: RTPROT_TETHER_POD, scope: dst.ip.family === 4 ? C.RT_SCOPE_LINK : C.RT_SCOPE_UNIVERSE };
}

/**
 * The host's way to the container: a /32 (/128) route through the host end and a static neighbour
 * entry for the container's MAC, so delivery needs no ARP or NDP either way. Both go with the link.
 */
export function routeToContainer(host: Netlink, link: Link, addresses: CIDR[], ctrMac: Uint8Array): void {
  for (const a of addresses) {
    try {
      host.routeAdd(hostRoute(link, a));
    } catch (e) {
      if (!(e instanceof NetlinkError && e.code === 'EEXIST')) throw e;
      const other = host.routes(a.ip.family).find((r) => r.dst && r.dst.prefix === a.prefix && ipEqual(r.dst.ip, a.ip));
      const dev = other?.oif !== undefined ? host.linkByIndex(other.oif)?.name ?? `index ${other.oif}` : 'no device';
      throw new CniError(ErrorCode.Internal, `the host already has a route to ${formatCIDR(a)} (via ${dev}), so it cannot route that address to ${link.name}: is it attached elsewhere?`, formatCIDR(a));
    }
    host.neighReplace(permanentNeighbor(link.index, a.ip, ctrMac));
  }
}

/** Every way the host side of an attachment differs from what ADD set up. */
export function hostProblems(host: Netlink, link: Link, addresses: CIDR[], ctrMac: string, families: Set<Family>): string[] {
  const problems: string[] = [];
  for (const a of addresses) {
    const route = host.routes(a.ip.family, { oif: link.index }).find((r) => r.dst && r.dst.prefix === a.prefix && ipEqual(r.dst.ip, a.ip));
    if (!route) problems.push(`host route ${formatCIDR(a)} dev ${link.name} is missing`);
    const neigh = host.neighbors(a.ip.family === 4 ? C.AF_INET : C.AF_INET6, link.index).find((n) => n.ip && ipEqual(n.ip, a.ip));
    if (!neigh || !(neigh.state & C.NUD_PERMANENT) || !neigh.mac || formatMAC(neigh.mac) !== ctrMac) {
      problems.push(`host neighbour entry ${formatCIDR(a)} -> ${ctrMac} on ${link.name} is ${neigh ? `${neigh.mac ? formatMAC(neigh.mac) : 'without MAC'} (state 0x${neigh.state.toString(16)})` : 'missing'}`);
    }
  }
  for (const [key, want] of [...hostEndSysctls(link.name, families), ...forwardingSysctls(families)]) {
    let got: string;
    try { got = sysctlGet(key); } catch { got = 'absent'; }
    if (got !== String(want)) problems.push(`sysctl ${key.replace(/\//g, '.')} is ${got}, not ${want}`);
  }
  return problems;
}
