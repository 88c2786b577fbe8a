import { Netlink } from '../lib/netlink/handle.js';
import { formatCIDR, formatIP, parseCIDR, parseIP, ipEqual, networkCIDR } from '../lib/ip/addr.js';
import { isLinkLocal } from '../lib/ip/addr.js';
import type { Result } from '../lib/cni/types.js';

/** What a namespace holds, reduced to what must not change across ADD + DEL (names, not volatile indexes). */
export interface Snapshot {
  links: string[];
  addresses: string[];
  routes: string[];
}

export function snapshot(path: string): Snapshot {
  return Netlink.within(path, (nl) => {
    const links = nl.links();
    const name = new Map(links.map((l) => [l.index, l.name]));
    return {
      links: links.map((l) => `${l.name} ${l.kind || 'device'}`).sort(),
      addresses: nl.addrs().filter((a) => !isLinkLocal(a.cidr.ip)).map((a) => `${name.get(a.index) ?? a.index} ${formatCIDR(a.cidr)}`).sort(),
      routes: [...nl.routes(4), ...nl.routes(6)]
        .filter((r) => !(r.dst && isLinkLocal(r.dst.ip)) && r.type !== 5 /* multicast */)
        .map((r) => `${r.dst ? formatCIDR(r.dst) : 'default'}${r.gateway ? ` via ${formatIP(r.gateway)}` : ''} dev ${r.oif !== undefined ? name.get(r.oif) ?? r.oif : '-'}`)
        .sort(),
    };
  });
}

export function diffSnapshots(before: Snapshot, after: Snapshot): string[] {
  const out: string[] = [];
  for (const k of ['links', 'addresses', 'routes'] as const) {
    const b = new Set(before[k]);
    const a = new Set(after[k]);
    for (const x of a) if (!b.has(x)) out.push(`${k}: left behind ${x}`);
    for (const x of b) if (!a.has(x)) out.push(`${k}: removed ${x}`);
  }
  return out;
}

/**
 * Checks that the kernel holds what the result says: each container interface exists in its sandbox
 * with the reported MAC, each address is on its interface, each route is in the table.
 */
export function verifyResultInKernel(result: Result, netns: string, ifname: string): string[] {
  const problems: string[] = [];
  const ifaces = result.interfaces ?? [];
  Netlink.within(netns, (nl) => {
    const ctr = ifaces.findIndex((i) => i.sandbox === netns && i.name === ifname);
    if (ctr < 0) problems.push(`result lists no interface ${ifname} with sandbox ${netns}`);
    for (const [i, iface] of ifaces.entries()) {
      if (iface.sandbox !== netns) continue;
      const link = nl.linkByName(iface.name);
      if (!link) { problems.push(`interface ${iface.name} (result index ${i}) is not in ${netns}`); continue; }
      if (iface.mac && link.mac !== iface.mac.toLowerCase()) problems.push(`${iface.name}: result MAC ${iface.mac}, kernel ${link.mac}`);
      if (!link.up) problems.push(`${iface.name} is down`);
    }
    for (const ip of result.ips ?? []) {
      const cidr = parseCIDR(ip.address)!;
      const iface = ip.interface !== undefined ? ifaces[ip.interface] : undefined;
      if (iface && iface.sandbox !== netns) continue;
      const link = nl.linkByName(iface?.name ?? ifname);
      const held = link ? nl.addrs({ index: link.index }) : [];
      if (!held.some((a) => ipEqual(a.cidr.ip, cidr.ip) && a.cidr.prefix === cidr.prefix)) {
        problems.push(`address ${ip.address} is not on ${iface?.name ?? ifname} (kernel has ${held.map((a) => formatCIDR(a.cidr)).join(', ') || 'none'})`);
      }
    }
    for (const r of result.routes ?? []) {
      const dst = parseCIDR(r.dst)!;
      const family = dst.ip.family;
      const gwDefault = (result.ips ?? []).map((i) => i.gateway).find((g) => g && parseIP(g)?.family === family);
      const gw = r.gw ?? gwDefault;
      const routes = nl.routes(family, { table: r.table ?? 254 });
      const found = routes.some((k) => {
        const kdst = k.dst ? formatCIDR(networkCIDR(k.dst)) : family === 4 ? '0.0.0.0/0' : '::/0';
        return kdst === formatCIDR(networkCIDR(dst)) && (!gw || (k.gateway && formatIP(k.gateway) === formatIP(parseIP(gw)!)));
      });
      if (!found) problems.push(`route ${r.dst}${gw ? ` via ${gw}` : ''} is not in the container's table ${r.table ?? 'main'}`);
    }
  });
  return problems;
}
