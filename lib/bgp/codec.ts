import { formatIP, ipFromBytes, parseIP, type CIDR, type Family, type IP } from '../ip/addr.js';
import * as C from './constants.js';
import {
  BgpError, emptyAttributes, emptyCapabilities,
  type AsPathSegment, type Capabilities, type CodecContext, type Message, type NotificationMessage,
  type OpenMessage, type PathAttributes, type RouteRefreshMessage, type UpdateMessage,
} from './messages.js';

// The BGP-4 wire format: one function pair per message type. Decoders see one whole message (the
// framer cut it out of the stream by its length field) and throw BgpError carrying the NOTIFICATION
// the session must send; UPDATE attribute errors that RFC 7606 downgrades are returned instead.

const MARKER = Buffer.alloc(16, 0xff);

export function frame(type: number, body: Uint8Array): Buffer {
  const len = C.HEADER_LEN + body.length;
  if (len > C.MAX_MESSAGE_LEN) throw new RangeError(`BGP message of ${len} bytes exceeds ${C.MAX_MESSAGE_LEN}`);
  const b = Buffer.allocUnsafe(len);
  MARKER.copy(b, 0);
  b.writeUInt16BE(len, 16);
  b[18] = type;
  b.set(body, C.HEADER_LEN);
  return b;
}

export function encodeMessage(m: Message, ctx: CodecContext = { as4: true }): Buffer {
  switch (m.type) {
    case 'open': return frame(C.MSG_OPEN, encodeOpenBody(m));
    case 'update': return frame(C.MSG_UPDATE, encodeUpdateBody(m, ctx));
    case 'notification': return frame(C.MSG_NOTIFICATION, Buffer.concat([Buffer.from([m.code, m.subcode]), m.data]));
    case 'keepalive': return frame(C.MSG_KEEPALIVE, new Uint8Array(0));
    case 'route-refresh': {
      const b = Buffer.alloc(4);
      b.writeUInt16BE(m.afi, 0);
      b[2] = m.subtype;
      b[3] = m.safi;
      return frame(C.MSG_ROUTE_REFRESH, b);
    }
  }
}

export interface Decoded {
  message: Message;
  /** RFC 7606: the UPDATE's attributes were bad; its NLRI must be treated as withdrawn. */
  treatAsWithdraw?: string;
}

/** Decodes one framed message (header included; the framer has checked marker and length). */
export function decodeMessage(msg: Uint8Array, ctx: CodecContext = { as4: true }): Decoded {
  const b = Buffer.from(msg.buffer, msg.byteOffset, msg.byteLength);
  const type = b[18];
  const body = b.subarray(C.HEADER_LEN);
  const badLength = () => {
    const d = Buffer.alloc(2);
    d.writeUInt16BE(b.length);
    return new BgpError(C.ERR_HEADER, C.ERR_HEADER_BAD_LENGTH, `${typeName(type)} of ${b.length} bytes`, d);
  };
  switch (type) {
    case C.MSG_OPEN:
      if (body.length < 10) throw badLength();
      return { message: decodeOpenBody(body) };
    case C.MSG_UPDATE: {
      if (body.length < 4) throw badLength();
      return decodeUpdateBody(body, ctx);
    }
    case C.MSG_NOTIFICATION:
      if (body.length < 2) throw badLength();
      return { message: { type: 'notification', code: body[0], subcode: body[1], data: Uint8Array.from(body.subarray(2)) } };
    case C.MSG_KEEPALIVE:
      if (body.length !== 0) throw badLength();
      return { message: { type: 'keepalive' } };
    case C.MSG_ROUTE_REFRESH:
      if (body.length !== 4) throw new BgpError(C.ERR_ROUTE_REFRESH, C.ERR_ROUTE_REFRESH_BAD_LENGTH, `ROUTE-REFRESH of ${b.length} bytes`, Uint8Array.from(b));
      return { message: { type: 'route-refresh', afi: body.readUInt16BE(0), subtype: body[2], safi: body[3] } };
    default:
      throw new BgpError(C.ERR_HEADER, C.ERR_HEADER_BAD_TYPE, `unknown message type ${type}`, Uint8Array.of(type));
  }
}

export function typeName(type: number): string {
  return ['?', 'OPEN', 'UPDATE', 'NOTIFICATION', 'KEEPALIVE', 'ROUTE-REFRESH'][type] ?? `type ${type}`;
}

// ---- OPEN

function routerIdBytes(id: string): Uint8Array {
  const ip = parseIP(id);
  if (!ip || ip.family !== 4) throw new RangeError(`BGP identifier ${id} is not a dotted quad`);
  return ip.bytes;
}

function encodeCapabilities(c: Capabilities): Buffer {
  const caps: Buffer[] = [];
  const cap = (code: number, value: Uint8Array) => caps.push(Buffer.concat([Buffer.from([code, value.length]), value]));
  for (const f of c.multiprotocol) {
    const v = Buffer.alloc(4);
    v.writeUInt16BE(f.afi, 0);
    v[3] = f.safi;
    cap(C.CAP_MULTIPROTOCOL, v);
  }
  if (c.routeRefresh) cap(C.CAP_ROUTE_REFRESH, new Uint8Array(0));
  if (c.gracefulRestart) {
    const gr = c.gracefulRestart;
    const v = Buffer.alloc(2 + 4 * gr.families.length);
    v.writeUInt16BE((gr.restarting ? 0x8000 : 0) | (gr.notification ? 0x4000 : 0) | (gr.time & 0x0fff), 0);
    gr.families.forEach((f, i) => {
      v.writeUInt16BE(f.afi, 2 + 4 * i);
      v[4 + 4 * i] = f.safi;
      v[5 + 4 * i] = f.forwarding ? 0x80 : 0;
    });
    cap(C.CAP_GRACEFUL_RESTART, v);
  }
  if (c.as4 !== undefined) {
    const v = Buffer.alloc(4);
    v.writeUInt32BE(c.as4);
    cap(C.CAP_AS4, v);
  }
  if (c.enhancedRouteRefresh) cap(C.CAP_ENHANCED_ROUTE_REFRESH, new Uint8Array(0));
  for (const o of c.other) cap(o.code, o.value);
  return Buffer.concat(caps);
}

function encodeOpenBody(m: OpenMessage): Buffer {
  const caps = encodeCapabilities(m.capabilities);
  const params = caps.length ? Buffer.concat([Buffer.from([C.OPT_PARAM_CAPABILITIES, caps.length]), caps]) : Buffer.alloc(0);
  if (params.length > 255) throw new RangeError('OPEN optional parameters exceed 255 bytes');
  const b = Buffer.alloc(10);
  b[0] = m.version;
  b.writeUInt16BE(m.myAs, 1);
  b.writeUInt16BE(m.holdTime, 3);
  b.set(routerIdBytes(m.routerId), 5);
  b[9] = params.length;
  return Buffer.concat([b, params]);
}

function openError(subcode: number, message: string, data?: Uint8Array): BgpError {
  return new BgpError(C.ERR_OPEN, subcode, message, data);
}

function decodeCapability(c: Capabilities, code: number, v: Buffer): void {
  const malformed = () => openError(C.ERR_OPEN_UNSUPPORTED_CAPABILITY, `malformed capability ${code} (${v.length} bytes)`, Buffer.concat([Buffer.from([code, v.length]), v]));
  switch (code) {
    case C.CAP_MULTIPROTOCOL:
      if (v.length !== 4) throw malformed();
      c.multiprotocol.push({ afi: v.readUInt16BE(0), safi: v[3] });
      return;
    case C.CAP_ROUTE_REFRESH:
      c.routeRefresh = true;
      return;
    case C.CAP_ENHANCED_ROUTE_REFRESH:
      c.enhancedRouteRefresh = true;
      return;
    case C.CAP_AS4:
      if (v.length !== 4) throw malformed();
      c.as4 = v.readUInt32BE(0);
      return;
    case C.CAP_GRACEFUL_RESTART: {
      if (v.length < 2 || (v.length - 2) % 4 !== 0) throw malformed();
      const head = v.readUInt16BE(0);
      const families = [];
      for (let o = 2; o < v.length; o += 4) families.push({ afi: v.readUInt16BE(o), safi: v[o + 2], forwarding: (v[o + 3] & 0x80) !== 0 });
      c.gracefulRestart = { restarting: (head & 0x8000) !== 0, notification: (head & 0x4000) !== 0, time: head & 0x0fff, families };
      return;
    }
    default:
      c.other.push({ code, value: Uint8Array.from(v) });
  }
}

function decodeOpenBody(body: Buffer): OpenMessage {
  const version = body[0];
  if (version !== 4) throw openError(C.ERR_OPEN_UNSUPPORTED_VERSION, `BGP version ${version}`, Uint8Array.of(0, 4));
  const optLen = body[9];
  if (optLen === 255 && body[10] === 255) {
    throw openError(C.ERR_OPEN_UNSUPPORTED_PARAM, 'extended optional parameters (RFC 9072) are not supported');
  }
  if (10 + optLen !== body.length) {
    throw new BgpError(C.ERR_OPEN, 0, `OPEN optional parameter length ${optLen} does not match the message`);
  }
  const capabilities = emptyCapabilities();
  for (let o = 10; o < body.length;) {
    if (o + 2 > body.length || o + 2 + body[o + 1] > body.length) throw new BgpError(C.ERR_OPEN, 0, 'OPEN optional parameter overruns the message');
    const ptype = body[o];
    const pv = body.subarray(o + 2, o + 2 + body[o + 1]);
    o += 2 + pv.length;
    if (ptype !== C.OPT_PARAM_CAPABILITIES) throw openError(C.ERR_OPEN_UNSUPPORTED_PARAM, `optional parameter type ${ptype}`);
    // A capabilities parameter may carry any number of capabilities (BIRD and GoBGP send them all in one).
    for (let q = 0; q < pv.length;) {
      if (q + 2 > pv.length || q + 2 + pv[q + 1] > pv.length) throw new BgpError(C.ERR_OPEN, 0, 'capability overruns its parameter');
      decodeCapability(capabilities, pv[q], pv.subarray(q + 2, q + 2 + pv[q + 1]));
      q += 2 + pv[q + 1];
    }
  }
  return {
    type: 'open', version, myAs: body.readUInt16BE(1), holdTime: body.readUInt16BE(3),
    routerId: formatIP(ipFromBytes(body.subarray(5, 9))), capabilities,
  };
}

// ---- prefixes (NLRI)

export function encodePrefix(c: CIDR): Buffer {
  const n = (c.prefix + 7) >> 3;
  const b = Buffer.alloc(1 + n);
  b[0] = c.prefix;
  b.set(c.ip.bytes.subarray(0, n), 1);
  if (c.prefix % 8) b[n] &= (0xff << (8 - (c.prefix % 8))) & 0xff; // trailing bits zero
  return b;
}

/** Prefixes packed to the end of buf; a length beyond the family or the buffer is an NLRI error (3/10). */
export function decodePrefixes(buf: Buffer, family: Family): CIDR[] {
  const max = family === 4 ? 32 : 128;
  const out: CIDR[] = [];
  for (let o = 0; o < buf.length;) {
    const len = buf[o];
    const n = (len + 7) >> 3;
    if (len > max || o + 1 + n > buf.length) {
      throw new BgpError(C.ERR_UPDATE, C.ERR_UPDATE_INVALID_NETWORK, `invalid IPv${family} prefix length ${len} in NLRI`);
    }
    const bytes = new Uint8Array(max / 8);
    bytes.set(buf.subarray(o + 1, o + 1 + n));
    if (len % 8) bytes[n - 1] &= (0xff << (8 - (len % 8))) & 0xff;
    out.push({ ip: { family, bytes }, prefix: len });
    o += 1 + n;
  }
  return out;
}

// ---- UPDATE

function attr(flags: number, type: number, value: Uint8Array): Buffer {
  const ext = value.length > 255;
  const h = Buffer.alloc(ext ? 4 : 3);
  h[0] = (flags & ~C.FLAG_EXTENDED) | (ext ? C.FLAG_EXTENDED : 0);
  h[1] = type;
  if (ext) h.writeUInt16BE(value.length, 2);
  else h[2] = value.length;
  return Buffer.concat([h, value]);
}

function u32(n: number): Buffer {
  const b = Buffer.alloc(4);
  b.writeUInt32BE(n >>> 0);
  return b;
}

function afiOf(family: Family): number { return family === 4 ? C.AFI_IPV4 : C.AFI_IPV6; }

function encodeAsPath(segments: AsPathSegment[], as4: boolean): Buffer {
  const parts: Buffer[] = [];
  for (const s of segments) {
    const b = Buffer.alloc(2 + s.asns.length * (as4 ? 4 : 2));
    b[0] = s.type;
    b[1] = s.asns.length;
    s.asns.forEach((a, i) => {
      if (as4) b.writeUInt32BE(a, 2 + 4 * i);
      else b.writeUInt16BE(a > 0xffff ? C.AS_TRANS : a, 2 + 2 * i);
    });
    parts.push(b);
  }
  return Buffer.concat(parts);
}

/** Attributes in type order, MP_REACH / MP_UNREACH first as RFC 7606 5.1 asks of senders. */
export function encodeAttributes(a: PathAttributes, ctx: CodecContext): Buffer {
  const out: Buffer[] = [];
  if (a.mpUnreach) {
    const h = Buffer.alloc(3);
    h.writeUInt16BE(a.mpUnreach.afi, 0);
    h[2] = a.mpUnreach.safi;
    out.push(attr(C.FLAG_OPTIONAL, C.ATTR_MP_UNREACH, Buffer.concat([h, ...a.mpUnreach.withdrawn.map(encodePrefix)])));
  }
  if (a.mpReach) {
    const r = a.mpReach;
    const nh = Buffer.concat(r.nextHops.map((ip) => ip.bytes));
    const h = Buffer.alloc(4);
    h.writeUInt16BE(r.afi, 0);
    h[2] = r.safi;
    h[3] = nh.length;
    out.push(attr(C.FLAG_OPTIONAL, C.ATTR_MP_REACH, Buffer.concat([h, nh, Buffer.of(0), ...r.nlri.map(encodePrefix)])));
  }
  if (a.origin !== undefined) out.push(attr(C.FLAG_TRANSITIVE, C.ATTR_ORIGIN, Buffer.of(a.origin)));
  if (a.asPath) out.push(attr(C.FLAG_TRANSITIVE, C.ATTR_AS_PATH, encodeAsPath(a.asPath, ctx.as4)));
  if (a.nextHop) out.push(attr(C.FLAG_TRANSITIVE, C.ATTR_NEXT_HOP, a.nextHop.bytes));
  if (a.med !== undefined) out.push(attr(C.FLAG_OPTIONAL, C.ATTR_MED, u32(a.med)));
  if (a.localPref !== undefined) out.push(attr(C.FLAG_TRANSITIVE, C.ATTR_LOCAL_PREF, u32(a.localPref)));
  if (a.atomicAggregate) out.push(attr(C.FLAG_TRANSITIVE, C.ATTR_ATOMIC_AGGREGATE, new Uint8Array(0)));
  if (a.communities) out.push(attr(C.FLAG_OPTIONAL | C.FLAG_TRANSITIVE, C.ATTR_COMMUNITIES, Buffer.concat(a.communities.map(u32))));
  if (a.originatorId) out.push(attr(C.FLAG_OPTIONAL, C.ATTR_ORIGINATOR_ID, routerIdBytes(a.originatorId)));
  if (a.clusterList) out.push(attr(C.FLAG_OPTIONAL, C.ATTR_CLUSTER_LIST, Buffer.concat(a.clusterList.map(routerIdBytes))));
  for (const o of a.other) out.push(attr(o.flags, o.type, o.value));
  return Buffer.concat(out);
}

function encodeUpdateBody(m: UpdateMessage, ctx: CodecContext): Buffer {
  const withdrawn = Buffer.concat(m.withdrawn.map(encodePrefix));
  const attrs = encodeAttributes(m.attributes, ctx);
  const wl = Buffer.alloc(2);
  wl.writeUInt16BE(withdrawn.length);
  const al = Buffer.alloc(2);
  al.writeUInt16BE(attrs.length);
  return Buffer.concat([wl, withdrawn, al, attrs, ...m.nlri.map(encodePrefix)]);
}

/** Flags a well-known or known optional attribute must carry (Partial and Extended Length aside). */
const EXPECTED_FLAGS: Record<number, number> = {
  [C.ATTR_ORIGIN]: C.FLAG_TRANSITIVE,
  [C.ATTR_AS_PATH]: C.FLAG_TRANSITIVE,
  [C.ATTR_NEXT_HOP]: C.FLAG_TRANSITIVE,
  [C.ATTR_MED]: C.FLAG_OPTIONAL,
  [C.ATTR_LOCAL_PREF]: C.FLAG_TRANSITIVE,
  [C.ATTR_ATOMIC_AGGREGATE]: C.FLAG_TRANSITIVE,
  [C.ATTR_COMMUNITIES]: C.FLAG_OPTIONAL | C.FLAG_TRANSITIVE,
  [C.ATTR_ORIGINATOR_ID]: C.FLAG_OPTIONAL,
  [C.ATTR_CLUSTER_LIST]: C.FLAG_OPTIONAL,
  [C.ATTR_MP_REACH]: C.FLAG_OPTIONAL,
  [C.ATTR_MP_UNREACH]: C.FLAG_OPTIONAL,
};

const WELL_KNOWN = new Set([C.ATTR_ORIGIN, C.ATTR_AS_PATH, C.ATTR_NEXT_HOP, C.ATTR_LOCAL_PREF, C.ATTR_ATOMIC_AGGREGATE]);

function familyOfAfi(afi: number): Family | null {
  return afi === C.AFI_IPV4 ? 4 : afi === C.AFI_IPV6 ? 6 : null;
}

function decodeAsPath(v: Buffer, as4: boolean): AsPathSegment[] | null {
  const w = as4 ? 4 : 2;
  const segs: AsPathSegment[] = [];
  for (let o = 0; o < v.length;) {
    if (o + 2 > v.length) return null;
    const type = v[o];
    const n = v[o + 1];
    if (type < C.AS_SET || type > C.AS_CONFED_SET || n === 0 || o + 2 + n * w > v.length) return null;
    const asns = [];
    for (let i = 0; i < n; i++) asns.push(as4 ? v.readUInt32BE(o + 2 + 4 * i) : v.readUInt16BE(o + 2 + 2 * i));
    segs.push({ type, asns });
    o += 2 + n * w;
  }
  return segs;
}

function ids(v: Buffer): string[] { return Array.from({ length: v.length / 4 }, (_, i) => formatIP(ipFromBytes(v.subarray(4 * i, 4 * i + 4)))); }

/**
 * One path attribute's value into `a`. Returns a reason when RFC 7606 says treat-as-withdraw; throws
 * BgpError when it says session reset (MP_REACH / MP_UNREACH: their NLRI cannot be trusted).
 */
function decodeAttribute(a: PathAttributes, flags: number, type: number, v: Buffer, ctx: CodecContext): string | undefined {
  const expected = EXPECTED_FLAGS[type];
  if (expected !== undefined && (flags & (C.FLAG_OPTIONAL | C.FLAG_TRANSITIVE)) !== expected) {
    if (type === C.ATTR_MP_REACH || type === C.ATTR_MP_UNREACH) {
      throw new BgpError(C.ERR_UPDATE, C.ERR_UPDATE_ATTRIBUTE_FLAGS, `attribute ${type} with flags 0x${flags.toString(16)}`);
    }
    return `attribute ${type} has flags 0x${flags.toString(16)}`;
  }
  const badLen = () => `attribute ${type} has a bad length ${v.length}`;
  switch (type) {
    case C.ATTR_ORIGIN:
      if (v.length !== 1) return badLen();
      if (v[0] > C.ORIGIN_INCOMPLETE) return `invalid ORIGIN ${v[0]}`;
      a.origin = v[0];
      return;
    case C.ATTR_AS_PATH: {
      const p = decodeAsPath(v, ctx.as4);
      if (!p) return 'malformed AS_PATH';
      a.asPath = p;
      return;
    }
    case C.ATTR_NEXT_HOP:
      if (v.length !== 4) return badLen();
      a.nextHop = ipFromBytes(v);
      return;
    case C.ATTR_MED:
      if (v.length !== 4) return badLen();
      a.med = v.readUInt32BE(0);
      return;
    case C.ATTR_LOCAL_PREF:
      if (v.length !== 4) return badLen();
      a.localPref = v.readUInt32BE(0);
      return;
    case C.ATTR_ATOMIC_AGGREGATE:
      // RFC 7606 7.6: a bad length discards the attribute only.
      if (v.length === 0) a.atomicAggregate = true;
      return;
    case C.ATTR_COMMUNITIES:
      if (v.length === 0 || v.length % 4) return badLen();
      a.communities = Array.from({ length: v.length / 4 }, (_, i) => v.readUInt32BE(4 * i));
      return;
    case C.ATTR_ORIGINATOR_ID:
      if (v.length !== 4) return badLen();
      a.originatorId = ids(v)[0];
      return;
    case C.ATTR_CLUSTER_LIST:
      if (v.length === 0 || v.length % 4) return badLen();
      a.clusterList = ids(v);
      return;
    case C.ATTR_MP_REACH: {
      if (v.length < 5 || 5 + v[3] > v.length) throw new BgpError(C.ERR_UPDATE, C.ERR_UPDATE_ATTRIBUTE_LENGTH, 'MP_REACH_NLRI too short');
      const afi = v.readUInt16BE(0);
      const family = familyOfAfi(afi);
      const nhLen = v[3];
      const nh = v.subarray(4, 4 + nhLen);
      const nlriBuf = v.subarray(5 + nhLen);
      if (!family) { a.other.push({ flags, type, value: Uint8Array.from(v) }); return; } // a family we did not negotiate
      const width = family === 4 ? 4 : 16;
      if (nhLen !== width && nhLen !== 2 * width) {
        // RFC 7606 7.11: the NLRI can still be located, so treat-as-withdraw what it carries.
        a.mpReach = { afi, safi: v[2], nextHops: [], nlri: decodePrefixes(nlriBuf, family) };
        return `MP_REACH_NLRI next hop of ${nhLen} bytes`;
      }
      const nextHops: IP[] = [];
      for (let o = 0; o < nhLen; o += width) nextHops.push(ipFromBytes(nh.subarray(o, o + width)));
      a.mpReach = { afi, safi: v[2], nextHops, nlri: decodePrefixes(nlriBuf, family) };
      return;
    }
    case C.ATTR_MP_UNREACH: {
      if (v.length < 3) throw new BgpError(C.ERR_UPDATE, C.ERR_UPDATE_ATTRIBUTE_LENGTH, 'MP_UNREACH_NLRI too short');
      const afi = v.readUInt16BE(0);
      const family = familyOfAfi(afi);
      if (!family) { a.other.push({ flags, type, value: Uint8Array.from(v) }); return; }
      a.mpUnreach = { afi, safi: v[2], withdrawn: decodePrefixes(v.subarray(3), family) };
      return;
    }
    default:
      if (!(flags & C.FLAG_OPTIONAL) || WELL_KNOWN.has(type)) {
        throw new BgpError(C.ERR_UPDATE, C.ERR_UPDATE_UNRECOGNIZED_WELL_KNOWN, `unrecognized well-known attribute ${type}`, Uint8Array.from(v));
      }
      a.other.push({ flags, type, value: Uint8Array.from(v) });
  }
}

function decodeUpdateBody(body: Buffer, ctx: CodecContext): Decoded {
  const malformed = (why: string) => new BgpError(C.ERR_UPDATE, C.ERR_UPDATE_MALFORMED_ATTRIBUTES, why);
  const wl = body.readUInt16BE(0);
  if (2 + wl + 2 > body.length) throw malformed(`withdrawn routes length ${wl} overruns the UPDATE`);
  const withdrawn = decodePrefixes(body.subarray(2, 2 + wl), 4);
  const al = body.readUInt16BE(2 + wl);
  const aStart = 4 + wl;
  if (aStart + al > body.length) throw malformed(`path attribute length ${al} overruns the UPDATE`);
  const nlri = decodePrefixes(body.subarray(aStart + al), 4);
  const attributes = emptyAttributes();
  const seen = new Set<number>();
  let reason: string | undefined;
  for (let o = aStart; o < aStart + al;) {
    if (o + 2 > aStart + al) { reason ??= 'truncated attribute header'; break; }
    const flags = body[o];
    const type = body[o + 1];
    const ext = (flags & C.FLAG_EXTENDED) !== 0;
    const hl = ext ? 4 : 3;
    if (o + hl > aStart + al) { reason ??= 'truncated attribute header'; break; }
    const len = ext ? body.readUInt16BE(o + 2) : body[o + 2];
    if (o + hl + len > aStart + al) {
      // RFC 7606 4: the attribute list is malformed but the NLRI field is intact.
      reason ??= `attribute ${type} of ${len} bytes overruns the attribute list`;
      break;
    }
    const v = body.subarray(o + hl, o + hl + len);
    o += hl + len;
    if (seen.has(type)) {
      if (type === C.ATTR_MP_REACH || type === C.ATTR_MP_UNREACH) throw malformed(`attribute ${type} appears twice`);
      continue; // RFC 7606 3.g: keep the first
    }
    seen.add(type);
    const r = decodeAttribute(attributes, flags, type, v, ctx);
    if (r) reason ??= r;
  }
  const message: UpdateMessage = { type: 'update', withdrawn, attributes, nlri };
  return reason ? { message, treatAsWithdraw: reason } : { message };
}

/**
 * RFC 7606 3.d: checks the attributes an UPDATE that announces something must carry. Returns the
 * reason to treat it as withdraw, or undefined.
 */
export function missingMandatory(u: UpdateMessage, ibgp: boolean): string | undefined {
  const announces = u.nlri.length > 0 || (u.attributes.mpReach?.nlri.length ?? 0) > 0;
  if (!announces) return undefined;
  const a = u.attributes;
  if (a.origin === undefined) return 'missing mandatory ORIGIN';
  if (!a.asPath) return 'missing mandatory AS_PATH';
  if (u.nlri.length && !a.nextHop) return 'missing mandatory NEXT_HOP';
  if (ibgp && a.localPref === undefined) return 'missing LOCAL_PREF on an iBGP session';
  return undefined;
}

/** End-of-RIB (RFC 4724 2): an empty UPDATE (IPv4) or one holding nothing but an empty MP_UNREACH. */
export function endOfRib(u: UpdateMessage): { afi: number; safi: number } | null {
  if (u.withdrawn.length || u.nlri.length || u.attributes.other.length) return null;
  const { mpUnreach, other: _other, ...rest } = u.attributes;
  if (Object.values(rest).some((v) => v !== undefined)) return null;
  if (!mpUnreach) return { afi: C.AFI_IPV4, safi: C.SAFI_UNICAST };
  return mpUnreach.withdrawn.length === 0 ? { afi: mpUnreach.afi, safi: mpUnreach.safi } : null;
}

export function endOfRibMessage(afi: number, safi: number): UpdateMessage {
  const attributes = emptyAttributes();
  if (afi !== C.AFI_IPV4 || safi !== C.SAFI_UNICAST) attributes.mpUnreach = { afi, safi, withdrawn: [] };
  return { type: 'update', withdrawn: [], attributes, nlri: [] };
}

export function notification(code: number, subcode: number, data: Uint8Array = new Uint8Array(0)): NotificationMessage {
  return { type: 'notification', code, subcode, data };
}

export function routeRefresh(afi: number, safi: number): RouteRefreshMessage {
  return { type: 'route-refresh', afi, subtype: 0, safi };
}

export { afiOf };
