import { formatMAC } from '../ip/mac.js';
import { ipFromBytes, type IP } from '../ip/addr.js';
import * as C from './constants.js';
import { Attrs, MessageWriter } from './wire.js';

export interface BridgeOptions {
  stpState?: number;
  /** In centiseconds (the kernel's clock_t), as iproute2 sends it. */
  forwardDelay?: number;
  ageingTime?: number;
  vlanFiltering?: boolean;
  mcastSnooping?: boolean;
}

export interface VxlanOptions {
  vni: number;
  local?: IP;
  group?: IP;
  port?: number;
  /** Index of the underlay device. */
  dev?: number;
  learning?: boolean;
  ttl?: number;
  ageing?: number;
  udpCsum?: boolean;
}

export interface BridgePortOptions {
  /** Read-only: BR_STATE_* (3 is forwarding). */
  state?: number;
  hairpin?: boolean;
  isolated?: boolean;
  learning?: boolean;
  unicastFlood?: boolean;
}

/** A link as the kernel reports it. */
export interface Link {
  index: number;
  name: string;
  /** IFLA_INFO_KIND: 'veth', 'bridge', 'vxlan', ... ('' for physical and loopback devices). */
  kind: string;
  slaveKind?: string;
  mtu: number;
  mac: string;
  flags: number;
  up: boolean;
  operState: C.OperState;
  master?: number;
  /** IFLA_LINK: for a veth, the peer's index (in the peer's namespace). */
  parent?: number;
  /** Set when the parent lives in another namespace. */
  linkNetnsId?: number;
  txqlen?: number;
  promiscuity?: number;
  carrier?: boolean;
  bridge?: BridgeOptions;
  vxlan?: VxlanOptions;
  bridgePort?: BridgePortOptions;
  /** IFLA_GROUP; 0 (the default group) is left out. */
  group?: number;
}

interface LinkCommon {
  name: string;
  mtu?: number;
  mac?: Uint8Array;
  txqlen?: number;
  master?: number;
  up?: boolean;
  /** Create the link directly inside the namespace this file descriptor refers to. */
  netnsFd?: number;
}

export type NewLink =
  // The kernel refuses IFF_UP on a veth peer at creation (ENOTCONN: its own peer is not wired yet),
  // so the type has no `up` there: bring the peer up afterwards, from its namespace.
  | (LinkCommon & { kind: 'veth'; peer: Omit<LinkCommon, 'master' | 'up'> })
  | (LinkCommon & { kind: 'bridge'; bridge?: BridgeOptions })
  | (LinkCommon & { kind: 'vxlan'; vxlan: VxlanOptions })
  | (LinkCommon & { kind: 'ifb' });

export interface LinkChanges {
  up?: boolean;
  mtu?: number;
  mac?: Uint8Array;
  /** 0 detaches from the current master. */
  master?: number;
  name?: string;
  promisc?: boolean;
  netnsFd?: number;
  /** The device group (IFLA_GROUP), which nftables matches as iifgroup / oifgroup. */
  group?: number;
}

/** struct ifinfomsg: family, pad, type, index, flags, change. */
export function ifinfomsg(index = 0, flags = 0, change = 0, family = C.AF_UNSPEC): Uint8Array {
  const b = new Uint8Array(16);
  const v = new DataView(b.buffer);
  v.setUint8(0, family);
  v.setInt32(4, index, true);
  v.setUint32(8, flags >>> 0, true);
  v.setUint32(12, change >>> 0, true);
  return b;
}

function writeCommon(w: MessageWriter, l: Omit<LinkCommon, 'up'>): void {
  w.str(C.IFLA_IFNAME, l.name);
  if (l.mtu !== undefined) w.u32(C.IFLA_MTU, l.mtu);
  if (l.mac) w.bytes(C.IFLA_ADDRESS, l.mac);
  if (l.txqlen !== undefined) w.u32(C.IFLA_TXQLEN, l.txqlen);
  if (l.master !== undefined) w.u32(C.IFLA_MASTER, l.master);
  if (l.netnsFd !== undefined) w.u32(C.IFLA_NET_NS_FD, l.netnsFd);
}

function writeBridge(w: MessageWriter, o: BridgeOptions): void {
  if (o.forwardDelay !== undefined) w.u32(C.IFLA_BR_FORWARD_DELAY, o.forwardDelay);
  if (o.ageingTime !== undefined) w.u32(C.IFLA_BR_AGEING_TIME, o.ageingTime);
  if (o.stpState !== undefined) w.u32(C.IFLA_BR_STP_STATE, o.stpState);
  if (o.vlanFiltering !== undefined) w.u8(C.IFLA_BR_VLAN_FILTERING, o.vlanFiltering ? 1 : 0);
  if (o.mcastSnooping !== undefined) w.u8(C.IFLA_BR_MCAST_SNOOPING, o.mcastSnooping ? 1 : 0);
}

function writeVxlan(w: MessageWriter, o: VxlanOptions): void {
  w.u32(C.IFLA_VXLAN_ID, o.vni);
  if (o.local) o.local.family === 4 ? w.bytes(C.IFLA_VXLAN_LOCAL, o.local.bytes) : w.bytes(C.IFLA_VXLAN_LOCAL6, o.local.bytes);
  if (o.group) o.group.family === 4 ? w.bytes(C.IFLA_VXLAN_GROUP, o.group.bytes) : w.bytes(C.IFLA_VXLAN_GROUP6, o.group.bytes);
  if (o.dev !== undefined) w.u32(C.IFLA_VXLAN_LINK, o.dev);
  if (o.ttl !== undefined) w.u8(C.IFLA_VXLAN_TTL, o.ttl);
  if (o.learning !== undefined) w.u8(C.IFLA_VXLAN_LEARNING, o.learning ? 1 : 0);
  if (o.ageing !== undefined) w.u32(C.IFLA_VXLAN_AGEING, o.ageing);
  if (o.port !== undefined) w.u16be(C.IFLA_VXLAN_PORT, o.port);
  if (o.udpCsum !== undefined) w.u8(C.IFLA_VXLAN_UDP_CSUM, o.udpCsum ? 1 : 0);
}

/** RTM_NEWLINK with NLM_F_CREATE|NLM_F_EXCL: an existing name is EEXIST, never silently reused. */
export function encodeNewLink(l: NewLink): MessageWriter {
  const w = new MessageWriter(C.RTM_NEWLINK, C.NLM_F_ACK | C.NLM_F_CREATE | C.NLM_F_EXCL);
  w.struct(ifinfomsg(0, l.up ? C.IFF_UP : 0, l.up ? C.IFF_UP : 0));
  writeCommon(w, l);
  w.nest(C.IFLA_LINKINFO, () => {
    w.str(C.IFLA_INFO_KIND, l.kind);
    if (l.kind === 'veth') {
      // The peer is a whole ifinfomsg + attributes, so it can be born in another namespace under its final name.
      w.nest(C.IFLA_INFO_DATA, () => w.nest(C.VETH_INFO_PEER, () => {
        w.struct(ifinfomsg());
        writeCommon(w, l.peer);
      }));
    } else if (l.kind === 'bridge') {
      if (l.bridge && Object.keys(l.bridge).length) w.nest(C.IFLA_INFO_DATA, () => writeBridge(w, l.bridge!));
    } else if (l.kind === 'vxlan') {
      w.nest(C.IFLA_INFO_DATA, () => writeVxlan(w, l.vxlan));
    }
  });
  return w;
}

export function encodeSetLink(index: number, c: LinkChanges): MessageWriter {
  const w = new MessageWriter(C.RTM_NEWLINK, C.NLM_F_ACK);
  let flags = 0;
  let change = 0;
  if (c.up !== undefined) { change |= C.IFF_UP; if (c.up) flags |= C.IFF_UP; }
  if (c.promisc !== undefined) { change |= C.IFF_PROMISC; if (c.promisc) flags |= C.IFF_PROMISC; }
  w.struct(ifinfomsg(index, flags, change));
  if (c.name !== undefined) w.str(C.IFLA_IFNAME, c.name);
  if (c.mtu !== undefined) w.u32(C.IFLA_MTU, c.mtu);
  if (c.mac) w.bytes(C.IFLA_ADDRESS, c.mac);
  if (c.master !== undefined) w.u32(C.IFLA_MASTER, c.master);
  if (c.netnsFd !== undefined) w.u32(C.IFLA_NET_NS_FD, c.netnsFd);
  if (c.group !== undefined) w.u32(C.IFLA_GROUP, c.group >>> 0);
  return w;
}

/** Bridge-port options go in IFLA_PROTINFO (nested) on an AF_BRIDGE RTM_SETLINK, as `bridge link set` does. */
export function encodeBridgePort(index: number, o: BridgePortOptions): MessageWriter {
  const w = new MessageWriter(C.RTM_SETLINK, C.NLM_F_ACK);
  w.struct(ifinfomsg(index, 0, 0, C.AF_BRIDGE));
  w.nest(C.IFLA_PROTINFO, () => {
    if (o.hairpin !== undefined) w.u8(C.IFLA_BRPORT_MODE, o.hairpin ? 1 : 0);
    if (o.learning !== undefined) w.u8(C.IFLA_BRPORT_LEARNING, o.learning ? 1 : 0);
    if (o.unicastFlood !== undefined) w.u8(C.IFLA_BRPORT_UNICAST_FLOOD, o.unicastFlood ? 1 : 0);
    if (o.isolated !== undefined) w.u8(C.IFLA_BRPORT_ISOLATED, o.isolated ? 1 : 0);
  });
  return w;
}

export function encodeDelLink(index: number): MessageWriter {
  return new MessageWriter(C.RTM_DELLINK, C.NLM_F_ACK).struct(ifinfomsg(index));
}

/** Deletes every link of the namespace in `group`, in one unregister batch (no ifindex: the group selects). */
export function encodeDelLinkGroup(group: number): MessageWriter {
  return new MessageWriter(C.RTM_DELLINK, C.NLM_F_ACK).struct(ifinfomsg(0)).u32(C.IFLA_GROUP, group >>> 0);
}

/** RTEXT_FILTER_SKIP_STATS: counters are large and tether never reads them. */
const EXT_MASK_SKIP_STATS = 8;

export function encodeGetLink(by: { index: number } | { name: string }): MessageWriter {
  const w = new MessageWriter(C.RTM_GETLINK, C.NLM_F_ACK);
  w.struct(ifinfomsg('index' in by ? by.index : 0));
  if ('name' in by) w.str(C.IFLA_IFNAME, by.name);
  w.u32(C.IFLA_EXT_MASK, EXT_MASK_SKIP_STATS);
  return w;
}

export function encodeLinkDump(filter: { master?: number; kind?: string } = {}): MessageWriter {
  const w = new MessageWriter(C.RTM_GETLINK, C.NLM_F_DUMP);
  w.struct(ifinfomsg());
  w.u32(C.IFLA_EXT_MASK, EXT_MASK_SKIP_STATS);
  if (filter.master !== undefined) w.u32(C.IFLA_MASTER, filter.master);
  if (filter.kind !== undefined) w.nest(C.IFLA_LINKINFO, () => w.str(C.IFLA_INFO_KIND, filter.kind!));
  return w;
}

function decodeBridge(a: Attrs): BridgeOptions {
  return {
    forwardDelay: a.u32(C.IFLA_BR_FORWARD_DELAY),
    ageingTime: a.u32(C.IFLA_BR_AGEING_TIME),
    stpState: a.u32(C.IFLA_BR_STP_STATE),
    vlanFiltering: a.has(C.IFLA_BR_VLAN_FILTERING) ? a.u8(C.IFLA_BR_VLAN_FILTERING) === 1 : undefined,
    mcastSnooping: a.has(C.IFLA_BR_MCAST_SNOOPING) ? a.u8(C.IFLA_BR_MCAST_SNOOPING) === 1 : undefined,
  };
}

function decodeVxlan(a: Attrs): VxlanOptions {
  const local = a.get(C.IFLA_VXLAN_LOCAL) ?? a.get(C.IFLA_VXLAN_LOCAL6);
  const group = a.get(C.IFLA_VXLAN_GROUP) ?? a.get(C.IFLA_VXLAN_GROUP6);
  const zero = (b: Buffer) => b.every((x) => x === 0);
  return {
    vni: a.u32(C.IFLA_VXLAN_ID) ?? 0,
    local: local && !zero(local) ? ipFromBytes(local) : undefined,
    group: group && !zero(group) ? ipFromBytes(group) : undefined,
    dev: a.u32(C.IFLA_VXLAN_LINK),
    ttl: a.u8(C.IFLA_VXLAN_TTL),
    learning: a.has(C.IFLA_VXLAN_LEARNING) ? a.u8(C.IFLA_VXLAN_LEARNING) === 1 : undefined,
    ageing: a.u32(C.IFLA_VXLAN_AGEING),
    port: a.u16be(C.IFLA_VXLAN_PORT),
    udpCsum: a.has(C.IFLA_VXLAN_UDP_CSUM) ? a.u8(C.IFLA_VXLAN_UDP_CSUM) === 1 : undefined,
  };
}

function decodeBridgePort(a: Attrs): BridgePortOptions {
  const bool = (t: number) => (a.has(t) ? a.u8(t) === 1 : undefined);
  return {
    state: a.u8(C.IFLA_BRPORT_STATE),
    hairpin: bool(C.IFLA_BRPORT_MODE),
    isolated: bool(C.IFLA_BRPORT_ISOLATED),
    learning: bool(C.IFLA_BRPORT_LEARNING),
    unicastFlood: bool(C.IFLA_BRPORT_UNICAST_FLOOD),
  };
}

/** Decodes an RTM_NEWLINK payload (ifinfomsg + attributes). */
export function decodeLink(payload: Buffer): Link {
  const index = payload.readInt32LE(4);
  const flags = payload.readUInt32LE(8);
  const a = new Attrs(payload, 16);
  const info = a.nested(C.IFLA_LINKINFO);
  const kind = info?.str(C.IFLA_INFO_KIND) ?? '';
  const slaveKind = info?.str(C.IFLA_INFO_SLAVE_KIND);
  const data = info?.nested(C.IFLA_INFO_DATA);
  const slaveData = info?.nested(C.IFLA_INFO_SLAVE_DATA);
  const mac = a.get(C.IFLA_ADDRESS);
  const link: Link = {
    index,
    name: a.str(C.IFLA_IFNAME) ?? '',
    kind,
    mtu: a.u32(C.IFLA_MTU) ?? 0,
    mac: mac ? formatMAC(mac) : '',
    flags,
    up: (flags & C.IFF_UP) !== 0,
    operState: C.IF_OPER_STATES[a.u8(C.IFLA_OPERSTATE) ?? 0] ?? 'unknown',
  };
  const master = a.u32(C.IFLA_MASTER);
  if (master) link.master = master;
  const nsid = a.i32(C.IFLA_LINK_NETNSID);
  if (nsid !== undefined) link.linkNetnsId = nsid;
  // The kernel leaves IFLA_LINK out when it equals our own index, which across namespaces happens
  // (a veth peer that is also index 2 over there): then the parent has our index.
  const parent = a.i32(C.IFLA_LINK) ?? (nsid !== undefined ? index : undefined);
  if (parent !== undefined && (parent !== index || nsid !== undefined)) link.parent = parent;
  const txq = a.u32(C.IFLA_TXQLEN);
  if (txq !== undefined) link.txqlen = txq;
  const group = a.u32(C.IFLA_GROUP);
  if (group) link.group = group;
  const promisc = a.u32(C.IFLA_PROMISCUITY);
  if (promisc !== undefined) link.promiscuity = promisc;
  const carrier = a.u8(C.IFLA_CARRIER);
  if (carrier !== undefined) link.carrier = carrier === 1;
  if (slaveKind) link.slaveKind = slaveKind;
  if (kind === 'bridge' && data) link.bridge = decodeBridge(data);
  if (kind === 'vxlan' && data) link.vxlan = decodeVxlan(data);
  if (slaveKind === 'bridge' && slaveData) link.bridgePort = decodeBridgePort(slaveData);
  return link;
}
