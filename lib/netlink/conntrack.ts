import { AF_INET, AF_INET6, NLM_F_ACK, NLM_F_DUMP } from './constants.js';
import { NetlinkError, type NetlinkSocket } from './socket.js';
import { Attrs, MessageWriter } from './wire.js';

// ctnetlink: list and delete connection-tracking entries, the part of `conntrack -D` a port mapping needs.

const NFNL_SUBSYS_CTNETLINK = 1;
const IPCTNL_MSG_CT_GET = 1;
const IPCTNL_MSG_CT_DELETE = 2;
const CTA_TUPLE_ORIG = 1;
const CTA_ZONE = 18;
const CTA_TUPLE_IP = 1;
const CTA_TUPLE_PROTO = 2;
const CTA_TUPLE_ZONE = 3;
const CTA_IP_V4_SRC = 1;
const CTA_IP_V4_DST = 2;
const CTA_IP_V6_SRC = 3;
const CTA_IP_V6_DST = 4;
const CTA_PROTO_NUM = 1;
const CTA_PROTO_SRC_PORT = 2;
const CTA_PROTO_DST_PORT = 3;

/** An entry's original-direction tuple, as raw bytes where the kernel keeps them in network order. */
export interface ConntrackTuple {
  family: number;
  src: Buffer;
  dst: Buffer;
  proto: number;
  sport?: number;
  dport?: number;
  /** Zone of the entry (0 when none), needed to delete it. */
  zone: number;
}

function decodeTuple(family: number, payload: Buffer): ConntrackTuple | null {
  const a = new Attrs(payload, 4);
  const orig = a.nested(CTA_TUPLE_ORIG);
  const ip = orig?.nested(CTA_TUPLE_IP);
  const proto = orig?.nested(CTA_TUPLE_PROTO);
  if (!ip || !proto) return null;
  const src = ip.get(family === AF_INET ? CTA_IP_V4_SRC : CTA_IP_V6_SRC);
  const dst = ip.get(family === AF_INET ? CTA_IP_V4_DST : CTA_IP_V6_DST);
  const num = proto.u8(CTA_PROTO_NUM);
  if (!src || !dst || num === undefined) return null;
  const zone = a.get(CTA_ZONE);
  return {
    family, src: Buffer.from(src), dst: Buffer.from(dst), proto: num,
    sport: proto.u16be(CTA_PROTO_SRC_PORT), dport: proto.u16be(CTA_PROTO_DST_PORT), zone: zone ? zone.readUInt16BE(0) : 0,
  };
}

/** Every entry of one family (AF_INET or AF_INET6) in the socket's namespace. */
export function conntrackList(sock: NetlinkSocket, family: typeof AF_INET | typeof AF_INET6): ConntrackTuple[] {
  const msgs = sock.dump(() => {
    const w = new MessageWriter((NFNL_SUBSYS_CTNETLINK << 8) | IPCTNL_MSG_CT_GET, NLM_F_DUMP, 32);
    w.struct(Uint8Array.of(family, 0, 0, 0));
    return w;
  });
  return msgs.map((m) => decodeTuple(family, m.payload)).filter((t): t is ConntrackTuple => t !== null);
}

/** Deletes the entry with this original tuple; false when it is already gone (it expired or someone else deleted it). */
export function conntrackDelete(sock: NetlinkSocket, t: ConntrackTuple): boolean {
  const w = new MessageWriter((NFNL_SUBSYS_CTNETLINK << 8) | IPCTNL_MSG_CT_DELETE, NLM_F_ACK, 128);
  w.struct(Uint8Array.of(t.family, 0, 0, 0));
  w.nest(CTA_TUPLE_ORIG, () => {
    w.nest(CTA_TUPLE_IP, () => {
      w.bytes(t.family === AF_INET ? CTA_IP_V4_SRC : CTA_IP_V6_SRC, t.src);
      w.bytes(t.family === AF_INET ? CTA_IP_V4_DST : CTA_IP_V6_DST, t.dst);
    });
    w.nest(CTA_TUPLE_PROTO, () => {
      w.u8(CTA_PROTO_NUM, t.proto);
      if (t.sport !== undefined) w.u16be(CTA_PROTO_SRC_PORT, t.sport);
      if (t.dport !== undefined) w.u16be(CTA_PROTO_DST_PORT, t.dport);
    });
    if (t.zone) w.u16be(CTA_TUPLE_ZONE, t.zone);
  });
  if (t.zone) w.u16be(CTA_ZONE, t.zone);
  try {
    sock.exec(w);
    return true;
  } catch (e) {
    if (e instanceof NetlinkError && e.code === 'ENOENT') return false;
    throw e;
  }
}
