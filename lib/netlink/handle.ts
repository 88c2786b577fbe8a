import type { CIDR, Family } from '../ip/addr.js';
import { inNetns, inNetnsFd } from '../netns/netns.js';
import { decodeAddr, encodeAddr, encodeAddrDump, type Address, type AddrOptions } from './addr.js';
import * as C from './constants.js';
import { deletionGroup } from './devgroups.js';
import {
  decodeLink, encodeBridgePort, encodeDelLink, encodeDelLinkGroup, encodeGetLink, encodeLinkDump, encodeNewLink, encodeSetLink,
  type BridgePortOptions, type Link, type LinkChanges, type NewLink,
} from './link.js';
import { decodeNeigh, encodeNeigh, encodeNeighDump, type Neighbor } from './neigh.js';
import { decodeRoute, encodeRoute, encodeRouteDump, type Route } from './route.js';
import { closing, NetlinkError, NetlinkSocket } from './socket.js';
import { decodeQdisc, encodeDelQdisc, encodeIngressQdisc, encodeQdiscDump, encodeRedirectFilter, encodeTbf, RTM_NEWQDISC, type Qdisc, type Tbf } from './tc.js';

/** A network namespace: its path, or an open fd on it (the fd stays the caller's to close). */
export type NetnsRef = string | { fd: number };

const isGone = (e: unknown) => e instanceof NetlinkError && (e.code === 'ENODEV' || e.code === 'ENOENT');

/**
 * rtnetlink bound to one network namespace: the namespace the socket was opened in. Every method is
 * one kernel operation, synchronous, and throws NetlinkError (errno + kernel text) when refused.
 */
export class Netlink {
  private readonly sock: NetlinkSocket;
  private constructor(sock: NetlinkSocket) { this.sock = sock; }

  /** A handle on the calling thread's current namespace. */
  static open(): Netlink { return new Netlink(NetlinkSocket.open()); }
  /** A handle on the namespace at path (a /run/netns entry or /proc/PID/ns/net). */
  static at(path: string): Netlink { return inNetns(path, () => Netlink.open()); }
  static atFd(fd: number): Netlink { return inNetnsFd(fd, () => Netlink.open()); }
  /**
   * A handle for the length of fn, closed after (also when fn throws, and once an async fn settles), as
   * Go's ns.Do: on the calling thread's namespace, or on the one at a path (a /run/netns entry or
   * /proc/PID/ns/net) or behind an open namespace fd. Nest calls for handles in two namespaces.
   */
  static within<T>(fn: (nl: Netlink) => T): T;
  static within<T>(netns: NetnsRef, fn: (nl: Netlink) => T): T;
  static within<T>(a: NetnsRef | ((nl: Netlink) => T), b?: (nl: Netlink) => T): T {
    if (typeof a === 'function') return closing(Netlink.open(), a);
    return closing(typeof a === 'string' ? Netlink.at(a) : Netlink.atFd(a.fd), b!);
  }

  close(): void { this.sock.close(); }

  // ---- links

  /** Creates the link and returns it as the kernel reports it (in this namespace, unless netnsFd moved it). */
  linkAdd(spec: NewLink): Link | null {
    this.sock.exec(encodeNewLink(spec));
    return spec.netnsFd === undefined ? this.linkByName(spec.name) : null;
  }

  /** GETLINK answers with the link, then the ACK requested so that errors arrive the same way. */
  linkByName(name: string): Link | null {
    try {
      return decodeLink(this.sock.exec(encodeGetLink({ name }))[0].payload);
    } catch (e) {
      if (isGone(e)) return null;
      throw e;
    }
  }

  linkByIndex(index: number): Link | null {
    try {
      return decodeLink(this.sock.exec(encodeGetLink({ index }))[0].payload);
    } catch (e) {
      if (isGone(e)) return null;
      throw e;
    }
  }

  links(filter: { master?: number; kind?: string } = {}): Link[] {
    return this.sock.dump(() => encodeLinkDump(filter))
      .filter((m) => m.type === C.RTM_NEWLINK)
      .map((m) => decodeLink(m.payload))
      .filter((l) => (filter.master === undefined || l.master === filter.master)
        && (filter.kind === undefined || l.kind === filter.kind));
  }

  linkSet(index: number, changes: LinkChanges): void { this.sock.exec(encodeSetLink(index, changes)); }

  bridgePortSet(index: number, options: BridgePortOptions): void { this.sock.exec(encodeBridgePort(index, options)); }

  /** Deletes a link; returns false if it was already gone. */
  linkDel(index: number): boolean {
    try {
      this.sock.exec(encodeDelLink(index));
      return true;
    } catch (e) {
      if (isGone(e)) return false;
      throw e;
    }
  }

  /**
   * Deletes links in one kernel batch: the unregister grace periods (~20 ms) are paid once, not once per
   * link. They are first put in a group of their own (lib/netlink/devgroups.ts), which RTM_DELLINK then
   * deletes. Links already gone are skipped; returns how many were deleted.
   */
  linksDelTogether(indexes: number[]): number {
    if (indexes.length <= 1) return indexes.filter((i) => this.linkDel(i)).length;
    const group = deletionGroup(indexes[0]);
    let n = 0;
    for (const i of indexes) {
      try {
        this.linkSet(i, { group });
        n++;
      } catch (e) {
        if (!isGone(e)) throw e;
      }
    }
    if (!n) return 0;
    try {
      this.sock.exec(encodeDelLinkGroup(group));
    } catch (e) {
      if (isGone(e)) return 0; // all went meanwhile (the first link's peer took them, or another DEL)
      throw e;
    }
    return n;
  }

  // ---- addresses

  addrAdd(index: number, cidr: CIDR, options: AddrOptions = {}): void {
    this.sock.exec(encodeAddr('add', index, cidr, options));
  }

  /** Returns false if the address was not there. */
  addrDel(index: number, cidr: CIDR): boolean {
    try {
      this.sock.exec(encodeAddr('del', index, cidr));
      return true;
    } catch (e) {
      if (e instanceof NetlinkError && (e.code === 'EADDRNOTAVAIL' || e.code === 'ENODEV')) return false;
      throw e;
    }
  }

  addrs(filter: { family?: Family; index?: number } = {}): Address[] {
    const out: Address[] = [];
    for (const m of this.sock.dump(() => encodeAddrDump(filter.family, filter.index))) {
      if (m.type !== C.RTM_NEWADDR) continue;
      const a = decodeAddr(m.payload);
      if (a && (filter.index === undefined || a.index === filter.index)) out.push(a);
    }
    return out;
  }

  // ---- routes

  routeAdd(route: Route): void { this.sock.exec(encodeRoute('add', route)); }
  routeReplace(route: Route): void { this.sock.exec(encodeRoute('replace', route)); }

  /** Returns false if no such route existed. */
  routeDel(route: Route): boolean {
    try {
      this.sock.exec(encodeRoute('del', route));
      return true;
    } catch (e) {
      if (e instanceof NetlinkError && (e.code === 'ESRCH' || e.code === 'ENODEV')) return false;
      throw e;
    }
  }

  /** Routes of one family; by default the main table only. Pass table 0 for every table. */
  routes(family: Family, filter: { table?: number; oif?: number; protocol?: number } = {}): Route[] {
    const table = filter.table ?? C.RT_TABLE_MAIN;
    const out: Route[] = [];
    for (const m of this.sock.dump(() => encodeRouteDump(family, table || undefined))) {
      if (m.type !== C.RTM_NEWROUTE) continue;
      const r = decodeRoute(m.payload);
      if (!r || (table && r.table !== table) || (filter.oif !== undefined && r.oif !== filter.oif)) continue;
      if (filter.protocol !== undefined && r.protocol !== filter.protocol) continue;
      out.push(r);
    }
    return out;
  }

  // ---- traffic control

  /** A tbf root qdisc on the device, replacing whatever root qdisc it had. */
  tbfReplace(index: number, t: Tbf): void {
    this.qdiscDel(index, 0xffffffff);
    this.sock.exec(encodeTbf(index, t));
  }

  /** An ingress qdisc whose filter redirects everything the device receives to the egress of `to`. */
  redirectIngress(index: number, to: number): void {
    this.sock.exec(encodeIngressQdisc(index));
    this.sock.exec(encodeRedirectFilter(index, to));
  }

  /** Deletes the qdisc at parent (TC_H_ROOT or TC_H_INGRESS); false when there was none of ours. */
  qdiscDel(index: number, parent: number): boolean {
    try {
      this.sock.exec(encodeDelQdisc(index, parent, parent === 0xfffffff1 ? 0xffff0000 : 0));
      return true;
    } catch (e) {
      if (e instanceof NetlinkError && (e.code === 'ENOENT' || e.code === 'ENODEV' || e.code === 'EINVAL')) return false;
      throw e;
    }
  }

  qdiscs(index?: number): Qdisc[] {
    return this.sock.dump(() => encodeQdiscDump())
      .filter((m) => m.type === RTM_NEWQDISC)
      .map((m) => decodeQdisc(m.payload))
      .filter((q) => index === undefined || q.index === index);
  }

  // ---- neighbours and forwarding database

  neighAdd(n: Neighbor): void { this.sock.exec(encodeNeigh('add', n)); }
  neighReplace(n: Neighbor): void { this.sock.exec(encodeNeigh('replace', n)); }
  /** FDB append: adds another destination for the same MAC (the VXLAN flood list). */
  neighAppend(n: Neighbor): void { this.sock.exec(encodeNeigh('append', n)); }

  neighDel(n: Neighbor): boolean {
    try {
      this.sock.exec(encodeNeigh('del', n));
      return true;
    } catch (e) {
      if (e instanceof NetlinkError && (e.code === 'ENOENT' || e.code === 'ENODEV')) return false;
      throw e;
    }
  }

  /** Neighbour entries (family AF_INET / AF_INET6) or FDB entries (AF_BRIDGE), optionally of one device. */
  neighbors(family: number, index?: number): Neighbor[] {
    return this.sock.dump(() => encodeNeighDump(family, index))
      .filter((m) => m.type === C.RTM_NEWNEIGH)
      .map((m) => decodeNeigh(m.payload))
      .filter((n) => index === undefined || n.index === index);
  }
}
