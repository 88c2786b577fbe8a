import type { Result, RouteConfig } from '../../lib/cni/types.js';
import { formatCIDR, formatIP, parseCIDR, parseIP, type CIDR, type Family, type IP } from '../../lib/ip/addr.js';
import { parseMAC } from '../../lib/ip/mac.js';
import * as C from '../../lib/netlink/constants.js';
import type { Route } from '../../lib/netlink/route.js';
import { containerRoutes } from '../common/container.js';

// Calico's layout: the container sees one router behind its only link, at an address no network
// uses; the host end answers for it with a fixed MAC, so every container's view is the same.

/** The host end's MAC, on every host veth. */
export const HOST_MAC = parseMAC('ee:ee:ee:ee:ee:ee')!;
/** The container's IPv4 next hop: link-local, never on the wire as a source, the same in every container. */
export const GATEWAY_V4 = parseIP('169.254.1.1')!;

/** The EUI-64 link-local address the kernel gives an interface with this MAC (RFC 4291 appendix A). */
export function eui64LinkLocal(mac: Uint8Array): IP {
  const b = new Uint8Array(16);
  b[0] = 0xfe; b[1] = 0x80;
  b.set([mac[0] ^ 0x02, mac[1], mac[2], 0xff, 0xfe, mac[3], mac[4], mac[5]], 8);
  return { family: 6, bytes: b };
}

/** The container's IPv6 next hop: the host end's own link-local address, fe80::ecee:eeff:feee:eeee. */
export const GATEWAY_V6 = eui64LinkLocal(HOST_MAC);

export const gatewayOf = (f: Family): IP => (f === 4 ? GATEWAY_V4 : GATEWAY_V6);

/** Host veths are "tgr" + 12 hex digits (tether gateway route), apart from tether-bridge's "veth...". */
export const HOST_VETH_PREFIX = 'tgr';

export interface L3Plan {
  families: Set<Family>;
  /** The container's addresses as /32 and /128: no subnet route, everything goes through the gateway. */
  addresses: CIDR[];
  /** Container routes in order: the on-link route to 169.254.1.1 first (the default route needs it). */
  containerRoutes: Route[];
  /** Static entries for the gateways: resolving them never depends on proxy ARP or NDP. */
  containerNeighbors: { ip: IP; mac: Uint8Array }[];
  /** The routes for the result: every container route with a gateway. */
  resultRoutes: RouteConfig[];
}

const hostPrefix = (f: Family) => (f === 4 ? 32 : 128);

/** What ADD puts in place, from IPAM's answer alone. */
export function planL3(ipam: Result): L3Plan {
  const addresses = (ipam.ips ?? []).map((i) => {
    const c = parseCIDR(i.address)!;
    return { ip: c.ip, prefix: hostPrefix(c.ip.family) };
  });
  const families = new Set<Family>(addresses.map((a) => a.ip.family));
  const gateways = new Map<Family, IP>([...families].map((f) => [f, gatewayOf(f)]));
  // IPAM's routes keep a gateway they name (a wrong one fails in the kernel and the ADD rolls back);
  // without one they go through the L3 gateway. A default route per family, always: the host is the only way out.
  // Routes of a family the container has no address in (a shared dual-stack list) have no way out: skipped.
  const ipamRoutes = (ipam.routes ?? []).map((r) => ({ dst: parseCIDR(r.dst)!, gw: r.gw ? parseIP(r.gw)! : undefined }))
    .filter((r) => families.has(r.dst.ip.family));
  const routed = containerRoutes(ipamRoutes, gateways, true);
  const onlink: Route[] = families.has(4) ? [{ family: 4, dst: { ip: GATEWAY_V4, prefix: 32 }, scope: C.RT_SCOPE_LINK }] : [];
  return {
    families,
    addresses,
    containerRoutes: [...onlink, ...routed],
    containerNeighbors: [...families].map((f) => ({ ip: gatewayOf(f), mac: HOST_MAC })),
    resultRoutes: routed.map((r) => ({ dst: r.dst ? formatCIDR(r.dst) : r.family === 4 ? '0.0.0.0/0' : '::/0', gw: formatIP(r.gateway!) })),
  };
}
