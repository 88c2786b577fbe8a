import { cidrContains, formatCIDR, ipEqual, type CIDR, type IP } from '../lib/ip/addr.js';
import { formatMAC } from '../lib/ip/mac.js';
import type { Netlink } from '../lib/netlink/handle.js';
import type { Link } from '../lib/netlink/link.js';
import { setFeatures } from '../lib/netlink/ethtool.js';

/** A VTEP MAC that is the same on every start of this node (derived, and kept in the state file). */
export function stableMAC(node: string, vni: number): Uint8Array {
  const seed = Buffer.from(`${node}/${vni}`);
  // FNV-1a over 48 bits: enough spread for a cluster, and no crypto module to load.
  let h = 0xcbf29ce484222325n;
  for (const b of seed) h = ((h ^ BigInt(b)) * 0x100000001b3n) & 0xffffffffffffffffn;
  const mac = new Uint8Array(6);
  for (let i = 0; i < 6; i++) mac[i] = Number((h >> BigInt(8 * i)) & 0xffn);
  mac[0] = (mac[0] & 0xfe) | 0x02; // unicast, locally administered
  return mac;
}


/** The VXLAN device as configured: everything a restart or an outside change is checked against. */
export interface DeviceSpec {
  name: string;
  vni: number;
  port: number;
  local: IP;
  underlayIndex: number;
  mtu: number;
  mac: Uint8Array;
  /**
   * The node subnet's network address as a /32: host-to-pod traffic gets a source inside the overlay.
   * None in peer mode (a node owns many blocks, none for good): the host's traffic leaves from its underlay address.
   */
  address?: CIDR;
  /** Addresses inside this are ours to remove when they are not `address`. */
  pool: CIDR;
  txChecksumOffload: boolean;
}

/** Why an existing device cannot be kept (it is replaced), or null when it matches. MTU and MAC are set in place. */
export function deviceMismatch(l: Link, s: DeviceSpec): string | null {
  if (l.kind !== 'vxlan' || !l.vxlan) return `it is ${l.kind ? `a ${l.kind}` : 'not a vxlan device'}`;
  const v = l.vxlan;
  if (v.vni !== s.vni) return `VNI ${v.vni}, want ${s.vni}`;
  if (v.port !== s.port) return `port ${v.port}, want ${s.port}`;
  if (!v.local || !ipEqual(v.local, s.local)) return 'another local address';
  if (v.dev !== s.underlayIndex) return `underlay device ${v.dev}, want ${s.underlayIndex}`;
  if (v.learning !== false) return 'learning is on';
  return null;
}

export interface EnsureOutcome { link: Link; created: boolean; changes: string[] }

/**
 * Creates the device, or brings an existing one back to the spec: replaced when its VXLAN parameters
 * differ, MTU/MAC/up/address fixed in place. The MAC is given at creation (so nothing such as udev
 * can pick another) and checked again once the link is up.
 */
export function ensureDevice(nl: Netlink, s: DeviceSpec): EnsureOutcome {
  const changes: string[] = [];
  let link = nl.linkByName(s.name);
  let created = false;
  if (link) {
    const why = deviceMismatch(link, s);
    if (why) {
      changes.push(`replaced ${s.name}: ${why}`);
      nl.linkDel(link.index);
      link = null;
    }
  }
  if (!link) {
    link = nl.linkAdd({
      kind: 'vxlan', name: s.name, mtu: s.mtu, mac: s.mac,
      vxlan: { vni: s.vni, local: s.local, dev: s.underlayIndex, port: s.port, learning: false },
    })!;
    created = true;
    changes.push(`created ${s.name} (VNI ${s.vni}, port ${s.port}, MTU ${s.mtu}, MAC ${formatMAC(s.mac)})`);
    if (!s.txChecksumOffload) {
      disableTxChecksum(s.name);
      changes.push(`tx checksum offload off on ${s.name}`);
    }
  }
  const mac = formatMAC(s.mac);
  if (link.mtu !== s.mtu) { nl.linkSet(link.index, { mtu: s.mtu }); changes.push(`MTU ${link.mtu} -> ${s.mtu}`); }
  if (link.mac !== mac) { nl.linkSet(link.index, { mac: s.mac }); changes.push(`MAC ${link.mac} -> ${mac}`); }
  if (!link.up) { nl.linkSet(link.index, { up: true }); if (!created) changes.push(`${s.name} set up`); }
  const want = s.address;
  const isWanted = (c: CIDR) => !!want && ipEqual(c.ip, want.ip) && c.prefix === want.prefix;
  for (const a of nl.addrs({ family: 4, index: link.index })) {
    if (cidrContains(s.pool, a.cidr.ip) && !isWanted(a.cidr)) {
      nl.addrDel(link.index, a.cidr);
      changes.push(`removed stale address ${formatCIDR(a.cidr)}`);
    }
  }
  if (want && !nl.addrs({ family: 4, index: link.index }).some((a) => isWanted(a.cidr))) {
    nl.addrAdd(link.index, want);
    changes.push(`address ${formatCIDR(want)}`);
  }
  link = nl.linkByIndex(link.index)!;
  // Published MAC and real MAC must agree, or every peer sends our traffic to a MAC we drop.
  if (link.mac !== mac) throw new Error(`${s.name} came up with MAC ${link.mac}, not the published ${mac}`);
  return { link, created, changes };
}

/** Turns off tx checksum offload (tx-checksum-ip-generic) over ethtool's generic netlink family, as `ethtool -K` does. */
export function disableTxChecksum(dev: string): void {
  try {
    setFeatures(dev, { 'tx-checksum-ip-generic': false });
  } catch (e) {
    throw new Error(`turning off tx checksum offload on ${dev}: ${(e as Error).message}`);
  }
}


