import { formatMAC } from '../ip/mac.js';
import { ipFromBytes, type IP } from '../ip/addr.js';
import * as C from './constants.js';
import { Attrs, MessageWriter } from './wire.js';

/**
 * A neighbour (ARP/NDP) entry, or with family AF_BRIDGE a forwarding-database entry.
 * On a VXLAN device an FDB entry maps a MAC to the remote VTEP address in `ip`.
 */
export interface Neighbor {
  family: number;
  index: number;
  ip?: IP;
  mac?: Uint8Array;
  /** NUD_* state; permanent for everything tether programs. */
  state: number;
  /** NTF_* flags: NTF_SELF for entries on the device itself (VXLAN), NTF_MASTER for the bridge's. */
  flags: number;
  master?: number;
  vni?: number;
  port?: number;
  vlan?: number;
}

function ndmsg(n: Neighbor): Uint8Array {
  const b = new Uint8Array(12);
  const v = new DataView(b.buffer);
  b[0] = n.family;
  v.setInt32(4, n.index, true);
  v.setUint16(8, n.state, true);
  b[10] = n.flags;
  return b;
}

export function encodeNeigh(op: 'add' | 'replace' | 'append' | 'del', n: Neighbor): MessageWriter {
  const flags = op === 'add' ? C.NLM_F_ACK | C.NLM_F_CREATE | C.NLM_F_EXCL
    : op === 'replace' ? C.NLM_F_ACK | C.NLM_F_CREATE | C.NLM_F_REPLACE
      : op === 'append' ? C.NLM_F_ACK | C.NLM_F_CREATE | C.NLM_F_APPEND : C.NLM_F_ACK;
  const w = new MessageWriter(op === 'del' ? C.RTM_DELNEIGH : C.RTM_NEWNEIGH, flags);
  w.struct(ndmsg(n));
  if (n.ip) w.bytes(C.NDA_DST, n.ip.bytes);
  if (n.mac) w.bytes(C.NDA_LLADDR, n.mac);
  if (n.vlan !== undefined) w.u16(C.NDA_VLAN, n.vlan);
  if (n.port !== undefined) w.u16be(C.NDA_PORT, n.port);
  if (n.vni !== undefined) w.u32(C.NDA_VNI, n.vni);
  if (n.master !== undefined) w.u32(C.NDA_MASTER, n.master);
  return w;
}

/** Under strict checking the kernel filters by device only through NDA_IFINDEX, never the header's index. */
export function encodeNeighDump(family: number, index?: number): MessageWriter {
  const w = new MessageWriter(C.RTM_GETNEIGH, C.NLM_F_DUMP);
  w.struct(ndmsg({ family, index: 0, state: 0, flags: 0 }));
  if (index !== undefined) w.u32(C.NDA_IFINDEX, index);
  return w;
}

export function decodeNeigh(payload: Buffer): Neighbor {
  const a = new Attrs(payload, 12);
  const n: Neighbor = {
    family: payload[0],
    index: payload.readInt32LE(4),
    state: payload.readUInt16LE(8),
    flags: payload[10],
  };
  const dst = a.get(C.NDA_DST);
  if (dst && (dst.length === 4 || dst.length === 16)) n.ip = ipFromBytes(dst);
  const ll = a.get(C.NDA_LLADDR);
  if (ll) n.mac = Buffer.from(ll);
  const master = a.u32(C.NDA_MASTER);
  if (master !== undefined) n.master = master;
  const vni = a.u32(C.NDA_VNI);
  if (vni !== undefined) n.vni = vni;
  const port = a.u16be(C.NDA_PORT);
  if (port !== undefined) n.port = port;
  const vlan = a.u16(C.NDA_VLAN);
  if (vlan !== undefined) n.vlan = vlan;
  return n;
}

export const macString = (n: Neighbor) => (n.mac ? formatMAC(n.mac) : '');
