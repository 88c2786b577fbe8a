import { ipFromBytes, type CIDR, type Family, type IP } from '../ip/addr.js';
import * as C from './constants.js';
import { Attrs, MessageWriter } from './wire.js';

export interface Route {
  family: Family;
  /** null is the default route. */
  dst: CIDR | null;
  gateway?: IP;
  oif?: number;
  /** Defaults to the main table. */
  table?: number;
  protocol?: number;
  scope?: number;
  /** RTN_*; defaults to unicast. */
  type?: number;
  /** The metric. */
  priority?: number;
  prefsrc?: IP;
  onlink?: boolean;
  mtu?: number;
  advmss?: number;
}

function rtmsg(r: Route, op: 'add' | 'replace' | 'del'): Uint8Array {
  const b = new Uint8Array(12);
  const table = r.table ?? C.RT_TABLE_MAIN;
  b[0] = r.family === 4 ? C.AF_INET : C.AF_INET6;
  b[1] = r.dst ? r.dst.prefix : 0;
  b[4] = table < 256 ? table : C.RT_TABLE_UNSPEC; // larger ids only fit in RTA_TABLE
  if (op === 'del') {
    // The kernel matches a delete on every non-zero field: leave protocol and type open and scope at
    // "nowhere" (as iproute2 does), or deleting a kernel- or link-scope route fails with ESRCH.
    b[5] = r.protocol ?? C.RTPROT_UNSPEC;
    b[6] = r.scope ?? C.RT_SCOPE_NOWHERE;
    b[7] = r.type ?? 0;
  } else {
    b[5] = r.protocol ?? C.RTPROT_BOOT;
    b[6] = defaultScope(r);
    b[7] = r.type ?? C.RTN_UNICAST;
  }
  new DataView(b.buffer).setUint32(8, r.onlink ? C.RTNH_F_ONLINK : 0, true);
  return b;
}

/** The scope iproute2 would pick: link for a directly connected unicast route, universe otherwise. */
export function defaultScope(r: Route): number {
  if (r.scope !== undefined) return r.scope;
  const type = r.type ?? C.RTN_UNICAST;
  if (type === C.RTN_LOCAL) return C.RT_SCOPE_HOST;
  if (type === C.RTN_UNICAST && !r.gateway && r.oif !== undefined) return C.RT_SCOPE_LINK;
  return C.RT_SCOPE_UNIVERSE;
}

export function encodeRoute(op: 'add' | 'replace' | 'del', r: Route): MessageWriter {
  const flags = op === 'add' ? C.NLM_F_ACK | C.NLM_F_CREATE | C.NLM_F_EXCL
    : op === 'replace' ? C.NLM_F_ACK | C.NLM_F_CREATE | C.NLM_F_REPLACE : C.NLM_F_ACK;
  const w = new MessageWriter(op === 'del' ? C.RTM_DELROUTE : C.RTM_NEWROUTE, flags);
  w.struct(rtmsg(r, op));
  w.u32(C.RTA_TABLE, r.table ?? C.RT_TABLE_MAIN);
  if (r.dst) w.bytes(C.RTA_DST, r.dst.ip.bytes);
  if (r.gateway) w.bytes(C.RTA_GATEWAY, r.gateway.bytes);
  if (r.oif !== undefined) w.u32(C.RTA_OIF, r.oif);
  if (r.priority !== undefined) w.u32(C.RTA_PRIORITY, r.priority);
  if (r.prefsrc) w.bytes(C.RTA_PREFSRC, r.prefsrc.bytes);
  if (r.mtu !== undefined || r.advmss !== undefined) {
    w.nest(C.RTA_METRICS, () => {
      if (r.mtu !== undefined) w.u32(C.RTAX_MTU, r.mtu);
      if (r.advmss !== undefined) w.u32(C.RTAX_ADVMSS, r.advmss);
    });
  }
  return w;
}

export function encodeRouteDump(family: Family, table?: number): MessageWriter {
  const w = new MessageWriter(C.RTM_GETROUTE, C.NLM_F_DUMP);
  const b = new Uint8Array(12);
  b[0] = family === 4 ? C.AF_INET : C.AF_INET6;
  w.struct(b);
  if (table !== undefined) w.u32(C.RTA_TABLE, table);
  return w;
}

export function decodeRoute(payload: Buffer): Route | null {
  const family = payload[0] === C.AF_INET ? 4 : payload[0] === C.AF_INET6 ? 6 : 0;
  if (!family) return null;
  const a = new Attrs(payload, 12);
  const dst = a.get(C.RTA_DST);
  const route: Route = {
    family,
    dst: dst ? { ip: ipFromBytes(dst), prefix: payload[1] } : null,
    table: a.u32(C.RTA_TABLE) ?? payload[4],
    protocol: payload[5],
    scope: payload[6],
    type: payload[7],
    onlink: (payload.readUInt32LE(8) & C.RTNH_F_ONLINK) !== 0,
  };
  if (!dst && payload[1] !== 0) return null; // not representable; never produced by the kernel
  const gw = a.get(C.RTA_GATEWAY);
  if (gw) route.gateway = ipFromBytes(gw);
  const oif = a.u32(C.RTA_OIF);
  if (oif !== undefined) route.oif = oif;
  const prio = a.u32(C.RTA_PRIORITY);
  if (prio !== undefined) route.priority = prio;
  const src = a.get(C.RTA_PREFSRC);
  if (src) route.prefsrc = ipFromBytes(src);
  const metrics = a.nested(C.RTA_METRICS);
  if (metrics) {
    const mtu = metrics.u32(C.RTAX_MTU);
    if (mtu !== undefined) route.mtu = mtu;
    const advmss = metrics.u32(C.RTAX_ADVMSS);
    if (advmss !== undefined) route.advmss = advmss;
  }
  return route;
}
