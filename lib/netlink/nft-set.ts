import { addToIP, lastOf, networkOf, type CIDR } from '../ip/addr.js';
import { NLM_F_ACK, NLM_F_CREATE, NLM_F_DUMP, NLM_F_EXCL } from './constants.js';
import { NetlinkError, type NetlinkSocket } from './socket.js';
import { Attrs, MessageWriter, type NetlinkMessage } from './wire.js';

// nf_tables set elements over netlink: the per-container part of a rule set whose rules never change
// (rules look the elements up). Element changes go in one nfnetlink batch, which the kernel applies
// as one transaction: all of a container's elements, or none of them.

const NFNL_SUBSYS_NFTABLES = 10;
const NFNL_MSG_BATCH_BEGIN = 16;
const NFNL_MSG_BATCH_END = 17;
const NFT_MSG_NEWSETELEM = 12;
const NFT_MSG_GETSETELEM = 13;
const NFT_MSG_DELSETELEM = 14;
const NFTA_SET_ELEM_LIST_TABLE = 1;
const NFTA_SET_ELEM_LIST_SET = 2;
const NFTA_SET_ELEM_LIST_ELEMENTS = 3;
const NFTA_LIST_ELEM = 1;
const NFTA_SET_ELEM_KEY = 1;
const NFTA_SET_ELEM_DATA = 2;
const NFTA_SET_ELEM_FLAGS = 3;
const NFTA_SET_ELEM_USERDATA = 6;
const NFTA_SET_ELEM_KEY_END = 10;
const NFTA_DATA_VALUE = 1;
const NFTNL_UDATA_SET_ELEM_COMMENT = 0;
export const NFT_SET_ELEM_INTERVAL_END = 1;

/** The two elements of an interval set that cover a prefix: its first address, and the end marker one past its last. */
export function prefixElements(c: CIDR): SetElement[] {
  const start: SetElement = { key: Buffer.from(networkOf(c).bytes) };
  const past = addToIP(lastOf(c), 1);
  return past ? [start, { key: Buffer.from(past.bytes), flags: NFT_SET_ELEM_INTERVAL_END }] : [start];
}

/** One element: its key, its data when the set is a map, and a comment (who added it). */
export interface SetElement {
  key: Buffer;
  /** A concatenated interval set's element: the key of the range's last member (the first is key). */
  keyEnd?: Buffer;
  data?: Buffer;
  flags?: number;
  comment?: string;
}

/** A change to one set of one table. */
export interface SetChange {
  op: 'add' | 'delete';
  family: number;
  table: string;
  set: string;
  elements: SetElement[];
  /** add only: fail with EEXIST when a key is already there (instead of keeping the old element). */
  exclusive?: boolean;
}

function nfgen(w: MessageWriter, family: number, resId = 0): void {
  w.struct(Uint8Array.of(family, 0, resId >> 8, resId & 0xff)); // nfgenmsg; res_id is big endian
}

function commentUdata(comment: string): Buffer {
  const v = Buffer.from(`${comment}\0`, 'utf8');
  if (v.length > 255) throw new RangeError(`nftables element comment is longer than 254 bytes: ${comment}`);
  return Buffer.concat([Uint8Array.of(NFTNL_UDATA_SET_ELEM_COMMENT, v.length), v]);
}

function writeElements(w: MessageWriter, elements: SetElement[], adding: boolean): void {
  w.nest(NFTA_SET_ELEM_LIST_ELEMENTS, () => {
    for (const e of elements) {
      w.nest(NFTA_LIST_ELEM, () => {
        w.nest(NFTA_SET_ELEM_KEY, () => { w.bytes(NFTA_DATA_VALUE, e.key); });
        if (e.keyEnd) w.nest(NFTA_SET_ELEM_KEY_END, () => { w.bytes(NFTA_DATA_VALUE, e.keyEnd!); });
        if (adding && e.data) w.nest(NFTA_SET_ELEM_DATA, () => { w.bytes(NFTA_DATA_VALUE, e.data!); });
        if (e.flags) w.bytes(NFTA_SET_ELEM_FLAGS, beU32(e.flags));
        if (adding && e.comment !== undefined) w.bytes(NFTA_SET_ELEM_USERDATA, commentUdata(e.comment));
      });
    }
  });
}

function beU32(v: number): Buffer {
  const b = Buffer.alloc(4);
  b.writeUInt32BE(v >>> 0);
  return b;
}

function changeMessage(c: SetChange): MessageWriter {
  const type = (NFNL_SUBSYS_NFTABLES << 8) | (c.op === 'add' ? NFT_MSG_NEWSETELEM : NFT_MSG_DELSETELEM);
  const flags = NLM_F_ACK | (c.op === 'add' ? NLM_F_CREATE | (c.exclusive ? NLM_F_EXCL : 0) : 0);
  const w = new MessageWriter(type, flags, 512);
  nfgen(w, c.family);
  w.str(NFTA_SET_ELEM_LIST_TABLE, c.table);
  w.str(NFTA_SET_ELEM_LIST_SET, c.set);
  writeElements(w, c.elements, c.op === 'add');
  return w;
}

/** Applies every change as one transaction. Throws NetlinkError (EEXIST for an exclusive add of a taken key, ENOENT...). */
export function nftApplySetChanges(sock: NetlinkSocket, changes: SetChange[]): void {
  const live = changes.filter((c) => c.elements.length > 0);
  if (!live.length) return;
  const begin = new MessageWriter(NFNL_MSG_BATCH_BEGIN, 0, 32);
  nfgen(begin, 0, NFNL_SUBSYS_NFTABLES);
  const end = new MessageWriter(NFNL_MSG_BATCH_END, 0, 32);
  nfgen(end, 0, NFNL_SUBSYS_NFTABLES);
  sock.execBatch([begin, ...live.map(changeMessage), end]);
}

function decodeComment(udata: Buffer | undefined): string | undefined {
  if (!udata) return undefined;
  for (let off = 0; off + 2 <= udata.length;) {
    const type = udata[off];
    const len = udata[off + 1];
    if (type === NFTNL_UDATA_SET_ELEM_COMMENT) {
      const v = udata.subarray(off + 2, off + 2 + len);
      const nul = v.indexOf(0);
      return v.toString('utf8', 0, nul < 0 ? v.length : nul);
    }
    off += 2 + len;
  }
  return undefined;
}

function decodeElements(msgs: NetlinkMessage[]): SetElement[] {
  const out: SetElement[] = [];
  for (const m of msgs) {
    if ((m.type & 0xff) !== NFT_MSG_NEWSETELEM) continue;
    const list = new Attrs(m.payload, 4).nested(NFTA_SET_ELEM_LIST_ELEMENTS);
    for (const raw of list?.all(NFTA_LIST_ELEM) ?? []) {
      const a = new Attrs(raw);
      const key = a.nested(NFTA_SET_ELEM_KEY)?.get(NFTA_DATA_VALUE);
      if (!key) continue;
      const flags = a.get(NFTA_SET_ELEM_FLAGS);
      const keyEnd = a.nested(NFTA_SET_ELEM_KEY_END)?.get(NFTA_DATA_VALUE);
      out.push({
        key: Buffer.from(key),
        ...(keyEnd ? { keyEnd: Buffer.from(keyEnd) } : {}),
        data: a.nested(NFTA_SET_ELEM_DATA)?.get(NFTA_DATA_VALUE),
        flags: flags ? flags.readUInt32BE(0) : 0,
        comment: decodeComment(a.get(NFTA_SET_ELEM_USERDATA)),
      });
    }
  }
  return out;
}

function getMessage(family: number, table: string, set: string, flags: number): MessageWriter {
  const w = new MessageWriter((NFNL_SUBSYS_NFTABLES << 8) | NFT_MSG_GETSETELEM, flags, 256);
  nfgen(w, family);
  w.str(NFTA_SET_ELEM_LIST_TABLE, table);
  w.str(NFTA_SET_ELEM_LIST_SET, set);
  return w;
}

/** Every element of a set (one dump). */
export function nftListElements(sock: NetlinkSocket, family: number, table: string, set: string): SetElement[] {
  return decodeElements(sock.dump(() => getMessage(family, table, set, NLM_F_DUMP)));
}

/** The element with this key, or null when the set has none. */
export function nftGetElement(sock: NetlinkSocket, family: number, table: string, set: string, key: Buffer): SetElement | null {
  const w = getMessage(family, table, set, NLM_F_ACK);
  writeElements(w, [{ key }], false);
  try {
    return decodeElements(sock.exec(w))[0] ?? null;
  } catch (e) {
    if (e instanceof NetlinkError && e.code === 'ENOENT') return null;
    throw e;
  }
}
