import { formatCIDR, formatIP, ipEqual, type CIDR } from '../lib/ip/addr.js';
import { formatMAC, parseMAC } from '../lib/ip/mac.js';
import * as C from '../lib/netlink/constants.js';
import type { Netlink } from '../lib/netlink/handle.js';
import type { Route } from '../lib/netlink/route.js';
import { installOps, type Op, type Programming } from './plan.js';
import { ensureDevice, type DeviceSpec } from './device.js';
import type { Logger } from '../lib/log.js';
import { RTPROT_TETHER_VXLAN } from '../lib/route-protocols.js';

export interface Devices {
  /** The VXLAN device's index. */
  vxlan: number;
  /** The underlay device's index (direct routes). */
  underlay: number;
}

/** The device brought to its spec (each change logged: at start, or as a drift fixed), and the indexes the dataplane works with. */
export function keepDevice(nl: Netlink, spec: DeviceSpec, underlayIndex: number, log: Logger, initial: boolean): { devices: Devices; created: boolean } {
  const out = ensureDevice(nl, spec);
  for (const ch of out.changes) log.info(initial ? 'device' : 'device drifted, fixed', { change: ch });
  return { devices: { vxlan: out.link.index, underlay: underlayIndex }, created: out.created };
}

/** Carries out one operation; deleting what is already gone is not an error. */
export function apply(nl: Netlink, dev: Devices, o: Op): void {
  switch (o.op) {
    case 'neigh-set':
      nl.neighReplace({ family: C.AF_INET, index: dev.vxlan, ip: o.ip, mac: parseMAC(o.mac)!, state: C.NUD_PERMANENT, flags: 0 });
      return;
    case 'neigh-del':
      nl.neighDel({ family: C.AF_INET, index: dev.vxlan, ip: o.ip, state: 0, flags: 0 });
      return;
    case 'fdb-set':
      nl.neighReplace({ family: C.AF_BRIDGE, index: dev.vxlan, ip: o.remote, mac: parseMAC(o.mac)!, state: C.NUD_PERMANENT, flags: C.NTF_SELF });
      return;
    case 'fdb-del':
      nl.neighDel({ family: C.AF_BRIDGE, index: dev.vxlan, ip: o.remote, mac: parseMAC(o.mac)!, state: 0, flags: C.NTF_SELF });
      return;
    case 'route-vxlan':
      nl.routeReplace({ family: 4, dst: o.subnet, gateway: o.gateway, oif: dev.vxlan, onlink: true, protocol: RTPROT_TETHER_VXLAN, scope: C.RT_SCOPE_UNIVERSE });
      return;
    case 'route-direct':
      nl.routeReplace({ family: 4, dst: o.subnet, gateway: o.via, oif: dev.underlay, protocol: RTPROT_TETHER_VXLAN, scope: C.RT_SCOPE_UNIVERSE });
      return;
    case 'route-del':
      nl.routeDel({ family: 4, dst: o.subnet, protocol: RTPROT_TETHER_VXLAN });
      return;
  }
}

const key = (c: CIDR) => formatCIDR(c);

/** Whether a kernel route is the one a peer's programming asks for. */
function routeIs(r: Route, p: Programming, dev: Devices): boolean {
  return p.kind === 'vxlan'
    ? r.oif === dev.vxlan && !!r.gateway && ipEqual(r.gateway, p.gateway)
    : r.oif === dev.underlay && !!r.gateway && ipEqual(r.gateway, p.via);
}

/**
 * The peers whose route is missing or not as programmed: a link set down takes every route through it
 * with it (directRouting's routes go through the underlay) and brings none back when it comes up.
 */
export function routesAdrift(nl: Netlink, dev: Devices, programmed: Iterable<Programming>): Programming[] {
  const have = new Map(nl.routes(4, { protocol: RTPROT_TETHER_VXLAN }).filter((r) => r.dst).map((r) => [key(r.dst!), r]));
  return [...programmed].filter((p) => { const r = have.get(key(p.subnet)); return !r || !routeIs(r, p, dev); });
}

/**
 * Makes the kernel hold exactly the entries of `want` (after a start, a re-list, or the device being
 * recreated): our routes, permanent neighbours and FDB entries that no peer accounts for are removed
 * first, then every peer's entries are (re)installed. Returns the operations done, for the log.
 */
export function reconcile(nl: Netlink, dev: Devices, want: Programming[]): Op[] {
  const done: Op[] = [];
  const run = (o: Op) => { apply(nl, dev, o); done.push(o); };
  const wantRoutes = new Map(want.map((p) => [key(p.subnet), p]));
  for (const r of nl.routes(4)) {
    if (r.protocol !== RTPROT_TETHER_VXLAN || !r.dst) continue;
    const p = wantRoutes.get(key(r.dst));
    if (!p || !routeIs(r, p, dev)) run({ op: 'route-del', subnet: r.dst });
  }
  const vx = want.filter((p): p is Extract<Programming, { kind: 'vxlan' }> => p.kind === 'vxlan');
  for (const n of nl.neighbors(C.AF_INET, dev.vxlan)) {
    if (!n.ip || !(n.state & C.NUD_PERMANENT)) continue;
    const mac = n.mac ? formatMAC(n.mac) : '';
    if (!vx.some((p) => ipEqual(p.gateway, n.ip!) && p.mac === mac)) run({ op: 'neigh-del', ip: n.ip, mac });
  }
  for (const n of nl.neighbors(C.AF_BRIDGE, dev.vxlan)) {
    if (!n.ip || !n.mac || !(n.flags & C.NTF_SELF)) continue;
    const mac = formatMAC(n.mac);
    if (!vx.some((p) => ipEqual(p.remote, n.ip!) && p.mac === mac)) run({ op: 'fdb-del', mac, remote: n.ip });
  }
  for (const p of want) for (const o of installOps(p)) run(o);
  return done;
}

export const describeTarget = (p: Programming) => (p.kind === 'vxlan' ? `${key(p.subnet)} via VTEP ${p.mac} at ${formatIP(p.remote)}` : `${key(p.subnet)} via ${formatIP(p.via)} (direct)`);
