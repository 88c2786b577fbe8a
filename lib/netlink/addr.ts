import { ipFromBytes, lastOf, type CIDR, type Family } from '../ip/addr.js';
import * as C from './constants.js';
import { Attrs, MessageWriter } from './wire.js';

export interface Address {
  index: number;
  family: Family;
  /** The interface's own address with its prefix length (IFA_LOCAL, else IFA_ADDRESS). */
  cidr: CIDR;
  /** IFA_F_* flags, full 32 bits. */
  flags: number;
  scope: number;
  label?: string;
}

export interface AddrOptions {
  /** IFA_F_* flags, e.g. IFA_F_NODAD. */
  flags?: number;
  scope?: number;
  /** Replace an existing address instead of failing with EEXIST. */
  replace?: boolean;
}

function ifaddrmsg(family: number, prefix: number, flags: number, scope: number, index: number): Uint8Array {
  const b = new Uint8Array(8);
  const v = new DataView(b.buffer);
  b[0] = family; b[1] = prefix; b[2] = flags & 0xff; b[3] = scope;
  v.setUint32(4, index, true);
  return b;
}

const af = (f: Family) => (f === 4 ? C.AF_INET : C.AF_INET6);

export function encodeAddr(op: 'add' | 'del', index: number, cidr: CIDR, o: AddrOptions = {}): MessageWriter {
  const flags = op === 'add' ? C.NLM_F_ACK | C.NLM_F_CREATE | (o.replace ? C.NLM_F_REPLACE : C.NLM_F_EXCL) : C.NLM_F_ACK;
  const w = new MessageWriter(op === 'add' ? C.RTM_NEWADDR : C.RTM_DELADDR, flags);
  const fam = cidr.ip.family;
  w.struct(ifaddrmsg(af(fam), cidr.prefix, o.flags ?? 0, o.scope ?? 0, index));
  w.bytes(C.IFA_LOCAL, cidr.ip.bytes);
  w.bytes(C.IFA_ADDRESS, cidr.ip.bytes);
  // Flags above the first byte (NOPREFIXROUTE, ...) only fit in IFA_FLAGS.
  if (o.flags !== undefined && o.flags > 0xff) w.u32(C.IFA_FLAGS, o.flags);
  // Like iproute2's "brd +" and the Go netlink library: IPv4 gets its broadcast address.
  if (op === 'add' && fam === 4 && cidr.prefix < 31) w.bytes(C.IFA_BROADCAST, lastOf(cidr).bytes);
  return w;
}

export function encodeAddrDump(family?: Family, index?: number): MessageWriter {
  const w = new MessageWriter(C.RTM_GETADDR, C.NLM_F_DUMP);
  w.struct(ifaddrmsg(family ? af(family) : C.AF_UNSPEC, 0, 0, 0, index ?? 0));
  return w;
}

export function decodeAddr(payload: Buffer): Address | null {
  const family = payload[0] === C.AF_INET ? 4 : payload[0] === C.AF_INET6 ? 6 : 0;
  if (!family) return null;
  const a = new Attrs(payload, 8);
  const raw = a.get(C.IFA_LOCAL) ?? a.get(C.IFA_ADDRESS);
  if (!raw) return null;
  const addr: Address = {
    index: payload.readUInt32LE(4),
    family,
    cidr: { ip: ipFromBytes(raw), prefix: payload[1] },
    flags: a.u32(C.IFA_FLAGS) ?? payload[2],
    scope: payload[3],
  };
  const label = a.str(C.IFA_LABEL);
  if (label) addr.label = label;
  return addr;
}
