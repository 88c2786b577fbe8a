import { formatCIDR, formatIP, type CIDR, type IP } from '../ip/addr.js';
import * as C from '../netlink/constants.js';
import type { Netlink } from '../netlink/handle.js';
import type { Route } from '../netlink/route.js';
import { RTPROT_TETHER_BGP } from '../route-protocols.js';

/** Where the speaker puts what it learned and what it owns. */
export interface RouteSink {
  /** A best path learned from a peer: a unicast route via its next hop. */
  install(prefix: CIDR, nextHop: IP): void;
  remove(prefix: CIDR): void;
  /** A block this node owns: a blackhole, so traffic for its unused addresses stops here. */
  blackhole(prefix: CIDR, present: boolean): void;
}

export interface KernelRoutesOptions {
  protocol?: number;
  table?: number;
  /** Metric of installed routes (BIRD's default is 32). */
  metric?: number;
}

/**
 * Kernel routes under our own protocol number (RTPROT_TETHER_BGP): every add, replace and delete
 * names that protocol, so routes of other daemons, static routes and connected routes are never
 * touched. reconcile() removes what an earlier run left behind.
 */
export class KernelRoutes implements RouteSink {
  readonly protocol: number;
  private readonly table: number;
  private readonly metric?: number;
  /** What we installed, by prefix: the kernel should hold exactly this. */
  private readonly wanted = new Map<string, Route>();

  constructor(private readonly nl: Netlink, o: KernelRoutesOptions = {}) {
    this.protocol = o.protocol ?? RTPROT_TETHER_BGP;
    this.table = o.table ?? C.RT_TABLE_MAIN;
    this.metric = o.metric;
  }

  private route(prefix: CIDR, extra: Partial<Route>): Route {
    const r: Route = { family: prefix.ip.family, dst: prefix, table: this.table, protocol: this.protocol, ...extra };
    if (this.metric !== undefined) r.priority = this.metric;
    return r;
  }

  install(prefix: CIDR, nextHop: IP): void {
    const r = this.route(prefix, { gateway: nextHop, type: C.RTN_UNICAST });
    this.nl.routeReplace(r);
    this.wanted.set(formatCIDR(prefix), r);
  }

  remove(prefix: CIDR): void {
    const key = formatCIDR(prefix);
    const r = this.wanted.get(key);
    this.wanted.delete(key);
    this.nl.routeDel(r ?? this.route(prefix, {}));
  }

  blackhole(prefix: CIDR, present: boolean): void {
    const r = this.route(prefix, { type: C.RTN_BLACKHOLE });
    if (present) {
      this.nl.routeReplace(r);
      this.wanted.set(formatCIDR(prefix), r);
    } else {
      this.wanted.delete(formatCIDR(prefix));
      this.nl.routeDel(r);
    }
  }

  /** Our protocol's routes in the table that we did not install (this run): removed. Returns them. */
  reconcile(): Route[] {
    const stale: Route[] = [];
    for (const family of [4, 6] as const) {
      for (const r of this.nl.routes(family, { table: this.table, protocol: this.protocol })) {
        if (!r.dst || !this.wanted.has(formatCIDR(r.dst))) stale.push(r);
      }
    }
    for (const r of stale) this.nl.routeDel({ ...r, protocol: this.protocol });
    return stale;
  }

  /**
   * Puts back what we installed and the kernel no longer holds as we installed it: a link set down takes
   * every route through it with it (and its coming back up restores none of them), and anyone may delete
   * or replace a route. Routes the kernel refuses now (no way to the next hop yet) are in `failed`, to be
   * tried again at the next call. Our routes nobody wants are reconcile()'s business, not this.
   */
  repair(): { restored: Route[]; failed: { route: Route; error: string }[] } {
    const restored: Route[] = [];
    const failed: { route: Route; error: string }[] = [];
    if (!this.wanted.size) return { restored, failed };
    const present = new Map<string, Route>();
    for (const family of [4, 6] as const) {
      for (const r of this.nl.routes(family, { table: this.table, protocol: this.protocol })) if (r.dst) present.set(formatCIDR(r.dst), r);
    }
    for (const [key, want] of this.wanted) {
      const have = present.get(key);
      const same = have && (have.type ?? C.RTN_UNICAST) === (want.type ?? C.RTN_UNICAST)
        && (want.gateway ? !!have.gateway && formatIP(have.gateway) === formatIP(want.gateway) : !have.gateway);
      if (same) continue;
      try {
        this.nl.routeReplace(want);
        restored.push(want);
      } catch (e) {
        failed.push({ route: want, error: (e as Error).message });
      }
    }
    return { restored, failed };
  }

  /** Every route we hold, for a clean shutdown without graceful restart. */
  clear(): void {
    for (const r of [...this.wanted.values()]) this.nl.routeDel(r);
    this.wanted.clear();
  }
}
