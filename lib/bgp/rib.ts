import { compareIP, formatCIDR, type CIDR, type Family, type IP } from '../ip/addr.js';
import * as C from './constants.js';
import type { PathAttributes } from './messages.js';

// Adj-RIB-In per peer and the Loc-RIB's best path per prefix. The RIB knows nothing of sessions or the
// kernel: it is told what each peer announced and withdrew and reports every change of best path.

export interface Path {
  prefix: CIDR;
  /** The peer's address (its key in the speaker). */
  peer: string;
  peerRouterId: string;
  ibgp: boolean;
  nextHop: IP;
  attributes: PathAttributes;
  /** Kept over a peer's graceful restart, waiting to be re-announced or swept. */
  stale: boolean;
}

export type BestChange = (prefix: CIDR, best: Path | null, previous: Path | null) => void;

function asPathLength(a: PathAttributes): number {
  // An AS_SET counts as one (RFC 4271 9.1.2.2); confederation segments do not count.
  let n = 0;
  for (const s of a.asPath ?? []) {
    if (s.type === C.AS_SEQUENCE) n += s.asns.length;
    else if (s.type === C.AS_SET) n += 1;
  }
  return n;
}

function firstAs(a: PathAttributes): number | undefined {
  const s = a.asPath?.find((x) => x.type === C.AS_SEQUENCE);
  return s?.asns[0];
}

function idNum(id: string): number { return id.split('.').reduce((a, x) => a * 256 + Number(x), 0); }

/**
 * RFC 4271 9.1.2.2 as far as our use needs it: a negative result means a is better. Higher LOCAL_PREF,
 * shorter AS_PATH, lower ORIGIN, lower MED (between paths from the same neighbouring AS), eBGP over
 * iBGP, shorter CLUSTER_LIST, lower router id (the ORIGINATOR_ID when reflected), lower peer address.
 */
export function comparePaths(a: Path, b: Path): number {
  const lp = (p: Path) => p.attributes.localPref ?? 100;
  if (lp(a) !== lp(b)) return lp(b) - lp(a);
  const al = asPathLength(a.attributes);
  const bl = asPathLength(b.attributes);
  if (al !== bl) return al - bl;
  const ao = a.attributes.origin ?? C.ORIGIN_INCOMPLETE;
  const bo = b.attributes.origin ?? C.ORIGIN_INCOMPLETE;
  if (ao !== bo) return ao - bo;
  if (firstAs(a.attributes) === firstAs(b.attributes)) {
    const am = a.attributes.med ?? 0;
    const bm = b.attributes.med ?? 0;
    if (am !== bm) return am - bm;
  }
  if (a.ibgp !== b.ibgp) return a.ibgp ? 1 : -1;
  const ac = a.attributes.clusterList?.length ?? 0;
  const bc = b.attributes.clusterList?.length ?? 0;
  if (ac !== bc) return ac - bc;
  const ai = idNum(a.attributes.originatorId ?? a.peerRouterId);
  const bi = idNum(b.attributes.originatorId ?? b.peerRouterId);
  if (ai !== bi) return ai - bi;
  return a.peer < b.peer ? -1 : a.peer > b.peer ? 1 : 0;
}

export class Rib {
  private readonly adjIn = new Map<string, Map<string, Path>>();
  private readonly best = new Map<string, Path>();

  constructor(private readonly onChange: BestChange = () => {}) {}

  private recompute(key: string, prefix: CIDR): void {
    let best: Path | null = null;
    for (const rib of this.adjIn.values()) {
      const p = rib.get(key);
      if (p && (!best || comparePaths(p, best) < 0)) best = p;
    }
    const prev = this.best.get(key) ?? null;
    if (best) this.best.set(key, best);
    else this.best.delete(key);
    if (best !== prev) this.onChange(prefix, best, prev);
  }

  /** Adds or replaces the peer's path for its prefix. */
  add(path: Path): void {
    const key = formatCIDR(path.prefix);
    let rib = this.adjIn.get(path.peer);
    if (!rib) this.adjIn.set(path.peer, rib = new Map());
    rib.set(key, path);
    this.recompute(key, path.prefix);
  }

  /** Returns whether the peer had a path for the prefix. */
  withdraw(peer: string, prefix: CIDR): boolean {
    const key = formatCIDR(prefix);
    const rib = this.adjIn.get(peer);
    if (!rib?.delete(key)) return false;
    this.recompute(key, prefix);
    return true;
  }

  /** Every path of the peer (or those of one family) goes; returns how many. */
  dropPeer(peer: string, family?: Family, onlyStale = false): number {
    const rib = this.adjIn.get(peer);
    if (!rib) return 0;
    const gone = [...rib.values()].filter((p) => (family === undefined || p.prefix.ip.family === family) && (!onlyStale || p.stale));
    for (const p of gone) {
      rib.delete(formatCIDR(p.prefix));
      this.recompute(formatCIDR(p.prefix), p.prefix);
    }
    if (!rib.size) this.adjIn.delete(peer);
    return gone.length;
  }

  /** Graceful restart: the peer's paths of these families stay in use, marked stale. */
  markStale(peer: string, families: Family[]): number {
    let n = 0;
    for (const p of this.adjIn.get(peer)?.values() ?? []) {
      if (families.includes(p.prefix.ip.family)) { p.stale = true; n++; }
    }
    return n;
  }

  count(peer: string): number { return this.adjIn.get(peer)?.size ?? 0; }

  paths(peer: string): Path[] { return [...this.adjIn.get(peer)?.values() ?? []]; }

  /** The Loc-RIB: best path per prefix, sorted by prefix. */
  bestPaths(): Path[] {
    return [...this.best.values()].sort((a, b) => compareIP(a.prefix.ip, b.prefix.ip) || a.prefix.prefix - b.prefix.prefix);
  }

  bestFor(prefix: CIDR): Path | undefined { return this.best.get(formatCIDR(prefix)); }
}
