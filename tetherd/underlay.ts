import { cidrContains, type CIDR, type Family, type IP } from '../lib/ip/addr.js';
import * as C from '../lib/netlink/constants.js';
import type { Netlink } from '../lib/netlink/handle.js';
import type { Link } from '../lib/netlink/link.js';

export interface Underlay {
  link: Link;
  /** The address VXLAN leaves from, with its prefix (peers inside it are on our segment). */
  address: CIDR;
}

/** Kinds that are never an underlay: our own device and pod bridges (their ports have a master, and no address). */
const NOT_UNDERLAY = new Set(['vxlan', 'bridge', 'dummy']);

const globalAddrs = (nl: Netlink, index: number, family: Family) => nl.addrs({ family, index }).filter((a) => a.scope === C.RT_SCOPE_UNIVERSE);

/**
 * The interface and address tetherd sends VXLAN from: as configured, else the interface of the default
 * route, else the only non-virtual interface with a global address of the underlay family (IPv4 unless
 * configured). A configured address must be on the chosen interface.
 */
export function detectUnderlay(nl: Netlink, o: { interface?: string; ip?: IP; family?: Family }): Underlay {
  const family: Family = o.ip?.family ?? o.family ?? 4;
  let link: Link | null = null;
  if (o.interface) {
    link = nl.linkByName(o.interface);
    if (!link) throw new Error(`underlay interface ${o.interface} does not exist`);
  } else if (o.ip) {
    const a = nl.addrs({ family: o.ip.family }).find((x) => cidrContains(x.cidr, o.ip!) && x.cidr.ip.bytes.every((b, i) => b === o.ip!.bytes[i]));
    if (!a) throw new Error('underlayIP is not an address of this node');
    link = nl.linkByIndex(a.index);
  } else {
    const dflt = nl.routes(family).find((r) => r.dst === null && r.oif !== undefined);
    if (dflt) link = nl.linkByIndex(dflt.oif!);
    if (!link) {
      const cands = nl.links().filter((l) => !(l.flags & C.IFF_LOOPBACK) && !NOT_UNDERLAY.has(l.kind) && l.master === undefined && globalAddrs(nl, l.index, family).length);
      if (cands.length !== 1) throw new Error(`cannot tell the underlay interface (${cands.length ? cands.map((l) => l.name).join(', ') : `no interface with a global IPv${family} address`}): set "underlayInterface"`);
      link = cands[0];
    }
  }
  const addrs = globalAddrs(nl, link!.index, family);
  const address = o.ip ? addrs.find((a) => a.cidr.ip.bytes.every((b, i) => b === o.ip!.bytes[i]))?.cidr : addrs[0]?.cidr;
  if (!address) throw new Error(`underlay interface ${link!.name} has ${o.ip ? 'not the configured underlayIP' : `no global IPv${family} address`}`);
  return { link: link!, address };
}

/** VXLAN's overhead: outer IPv4 20 (IPv6 40) + UDP 8 + VXLAN 8 + inner Ethernet 14. */
export const overhead = (family: 4 | 6) => (family === 4 ? 50 : 70);
