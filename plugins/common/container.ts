import { CniError, ErrorCode } from '../../lib/cni/errors.js';
import { formatCIDR, formatIP, type CIDR, type Family, type IP } from '../../lib/ip/addr.js';
import * as C from '../../lib/netlink/constants.js';
import { Netlink } from '../../lib/netlink/handle.js';
import type { Neighbor } from '../../lib/netlink/neigh.js';
import type { Route } from '../../lib/netlink/route.js';
import { inNetnsFd } from '../../lib/netns/netns.js';
import { sysctlSet } from '../../lib/netns/sysctl.js';

const pause = new Int32Array(new SharedArrayBuffer(4));
export const sleepMs = (ms: number) => { Atomics.wait(pause, 0, 0, ms); };

export interface ContainerPlan {
  ifname: string;
  addresses: CIDR[];
  routes: Route[];
  enabledad: boolean;
  up: boolean;
  /** Permanent neighbour entries on the interface (a routed gateway that must resolve without ARP/NDP). */
  neighbors?: { ip: IP; mac: Uint8Array }[];
}

// DAD itself takes dad_transmits x retrans_time (1 s by default); the rest is room for a loaded machine.
const DAD_WAIT_MS = 15_000;

/**
 * Configures the container end inside its namespace, in one synchronous window: sysctls first (they
 * must be in place before the address arrives: DAD, gratuitous ARP), then addresses, up, routes.
 * Returns the interface's MAC.
 */
export function configureContainer(netnsFd: number, plan: ContainerPlan): string {
  return inNetnsFd(netnsFd, () => {
    return Netlink.within((nl) => {
      const link = nl.linkByName(plan.ifname);
      if (!link) throw new CniError(ErrorCode.Internal, `${plan.ifname} is missing in the container right after creation`);
      const families = new Set<Family>(plan.addresses.map((a) => a.ip.family));
      const conf = (f: 'ipv4' | 'ipv6', key: string, v: number) => sysctlSet(`net/${f}/conf/${plan.ifname}/${key}`, v);
      if (families.has(4)) conf('ipv4', 'arp_notify', 1); // gratuitous ARP on up, so neighbours learn the new MAC
      if (families.has(6)) {
        sysctlSet('net/ipv6/conf/lo/disable_ipv6', 0);
        conf('ipv6', 'disable_ipv6', 0);
        conf('ipv6', 'keep_addr_on_down', 1);
        conf('ipv6', 'accept_dad', plan.enabledad ? 1 : 0);
        if (plan.enabledad) conf('ipv6', 'enhanced_dad', 1);
        conf('ipv6', 'ndisc_notify', 1); // unsolicited neighbour advertisement: IPv6's gratuitous ARP
      }
      for (const a of plan.addresses) nl.addrAdd(link.index, a);
      if (plan.up) nl.linkSet(link.index, { up: true });
      if (plan.enabledad && families.has(6)) waitForDad(nl, link.index);
      for (const r of plan.routes) {
        try {
          nl.routeAdd({ ...r, oif: link.index });
        } catch (e) {
          const what = `${r.dst ? formatCIDR(r.dst) : 'default'}${r.gateway ? ` via ${formatIP(r.gateway)}` : ''}`;
          throw new CniError(ErrorCode.Internal, `cannot add the route ${what} in the container: ${(e as Error).message}`, what);
        }
      }
      // After up: taking a link down flushes its neighbour entries, permanent ones included.
      for (const n of plan.neighbors ?? []) nl.neighReplace(permanentNeighbor(link.index, n.ip, n.mac));
      return nl.linkByIndex(link.index)!.mac;
    });
  });
}

/** A static ARP/NDP entry: never expires, never probed. */
export function permanentNeighbor(index: number, ip: IP, mac: Uint8Array): Neighbor {
  return { family: ip.family === 4 ? C.AF_INET : C.AF_INET6, index, ip, mac, state: C.NUD_PERMANENT, flags: 0 };
}

/** With DAD on, addresses start tentative; wait until they settle, and fail on a duplicate. */
function waitForDad(nl: Netlink, index: number): void {
  const deadline = Date.now() + DAD_WAIT_MS;
  for (;;) {
    const v6 = nl.addrs({ family: 6, index }).filter((a) => a.scope === C.RT_SCOPE_UNIVERSE);
    const failed = v6.find((a) => a.flags & C.IFA_F_DADFAILED);
    if (failed) throw new CniError(ErrorCode.Internal, `duplicate address detection failed for ${formatCIDR(failed.cidr)}: another node on the link uses it`);
    if (!v6.some((a) => a.flags & C.IFA_F_TENTATIVE)) return;
    if (Date.now() > deadline) throw new CniError(ErrorCode.TryAgainLater, `IPv6 addresses still tentative after ${DAD_WAIT_MS / 1000} s of duplicate address detection`);
    sleepMs(20);
  }
}

/** The route list for a container: IPAM's routes (gateway defaulted by family) plus default routes when asked. */
export function containerRoutes(ipamRoutes: { dst: CIDR; gw?: IP }[], gateways: Map<Family, IP>, addDefault: boolean): Route[] {
  const routes: Route[] = ipamRoutes.map((r) => {
    const gw = r.gw ?? gateways.get(r.dst.ip.family);
    return gw ? { family: r.dst.ip.family, dst: r.dst.prefix === 0 ? null : r.dst, gateway: gw } : { family: r.dst.ip.family, dst: r.dst.prefix === 0 ? null : r.dst };
  });
  if (addDefault) {
    for (const [family, gw] of gateways) {
      if (routes.some((r) => r.family === family && r.dst === null && r.gateway)) continue;
      routes.push({ family, dst: null, gateway: gw });
    }
  }
  return routes;
}
