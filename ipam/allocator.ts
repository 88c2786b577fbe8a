import { CniError, ErrorCode } from '../lib/cni/errors.js';
import { bigIntToIP, cidrContains, formatIP, ipEqual, ipToBigInt, parseIP, type IP } from '../lib/ip/addr.js';
import type { Entry, KV } from '../lib/store/kv.js';
import { describeSet, setCapacity, type IpamConfig, type Range, type RangeSet } from './config.js';

/** Who holds an address: the attachment (container ID, interface name). */
export interface Owner {
  containerID: string;
  ifname: string;
}

export interface Allocation extends Owner {
  ip: string;
  since: string;
}

interface IpRecord extends Owner { since: string }
interface HandleRecord { ips: string[]; since: string }

// Key layout inside one network's store: one key per address, one per attachment, one cursor per set.
const ipKey = (ip: string) => `ip/${ip}`;
const handleKey = (o: Owner) => `handle/${o.containerID}/${o.ifname}`;
const cursorKey = (set: number) => `cursor/${set}`;

const MAX_RETRIES = 64;
const MAX_SCAN = 1 << 20;

export interface Allocated {
  ips: { ip: IP; range: Range }[];
  /** True when the attachment already held these addresses (a retried ADD): nothing new was reserved. */
  existing: boolean;
}

function parseJSON<T>(e: Entry | undefined): T | undefined {
  if (!e) return undefined;
  try { return JSON.parse(e.value) as T; } catch { return undefined; }
}

/**
 * Allocation over any KV: read, decide, then one conditional transaction (the address keys and the
 * handle must still be absent); on a lost race, read again and retry. Nothing is locked across the
 * decision, so the same code is correct on the embedded store and on etcd.
 */
export class Allocator {
  constructor(private readonly kv: KV, private readonly cfg: IpamConfig) {}

  private excluded(ip: IP): boolean {
    return this.cfg.exclude.some((c) => cidrContains(c, ip));
  }

  private setOf(ip: IP): number {
    return this.cfg.ranges.findIndex((set) => set.some((r) => cidrContains(r.subnet, ip) && ipToBigInt(ip) >= ipToBigInt(r.start) && ipToBigInt(ip) <= ipToBigInt(r.end)));
  }

  private rangeOf(ip: IP): Range | undefined {
    for (const set of this.cfg.ranges) for (const r of set) if (cidrContains(r.subnet, ip)) return r;
    return undefined;
  }

  /** The next free address of a set after the cursor, round-robin like host-local (addresses are not reused at once). */
  private nextFree(set: RangeSet, setIndex: number, taken: Set<string>, cursor: string | undefined): { ip: IP; range: Range } {
    const capacity = setCapacity(set);
    const exhausted = () => {
      let inSet = 0;
      for (const t of taken) if (this.setOf(parseIP(t)!) === setIndex) inSet++;
      return new CniError(ErrorCode.TryAgainLater,
        `no free address in range set ${describeSet(set)} of network "${this.cfg.network}": ${inSet} of ${capacity} in use`,
        `ipam.ranges[${setIndex}]`);
    };
    // Counting this set's addresses exactly costs a parse per allocation; do it only when the total
    // number taken (every set's) says this one might be full. Usually the scan below stops at once.
    if (BigInt(taken.size) >= capacity) {
      let inSet = 0n;
      for (const t of taken) if (this.setOf(parseIP(t)!) === setIndex) inSet++;
      if (inSet >= capacity) throw exhausted();
    }
    const spans = set.map((r) => ({ r, lo: ipToBigInt(r.start), hi: ipToBigInt(r.end) }));
    const family = set[0].subnet.ip.family;
    let span = 0;
    let at = spans[0].lo;
    const from = cursor ? parseIP(cursor) : null;
    if (from && from.family === family) {
      const v = ipToBigInt(from);
      const i = spans.findIndex((s) => v >= s.lo && v <= s.hi);
      if (i >= 0) { span = i; at = v + 1n; if (at > spans[i].hi) { span = (i + 1) % spans.length; at = spans[span].lo; } }
    }
    const limit = capacity + BigInt(set.length) < BigInt(MAX_SCAN) ? Number(capacity) + set.length : MAX_SCAN;
    for (let n = 0; n < limit; n++) {
      const { r, hi } = spans[span];
      const ip = bigIntToIP(at, family);
      if (!ipEqual(ip, r.gateway) && !taken.has(formatIP(ip)) && !this.excluded(ip)) return { ip, range: r };
      at += 1n;
      if (at > hi) { span = (span + 1) % spans.length; at = spans[span].lo; }
    }
    throw exhausted();
  }

  /** Reserves one address per range set for the owner, or returns what it already holds. */
  async allocate(owner: Owner, requested: IP[] = []): Promise<Allocated> {
    const placed = new Map<number, IP>();
    for (const ip of requested) {
      const set = this.setOf(ip);
      if (set < 0) throw new CniError(ErrorCode.InvalidNetworkConfig, `requested address ${formatIP(ip)} is in no range of network "${this.cfg.network}"`, 'ips');
      if (placed.has(set)) throw new CniError(ErrorCode.InvalidNetworkConfig, `two requested addresses fall in range set ${set}: only one address per set`, 'ips');
      if (this.cfg.ranges[set].some((r) => ipEqual(r.gateway, ip))) throw new CniError(ErrorCode.InvalidNetworkConfig, `requested address ${formatIP(ip)} is the gateway`, 'ips');
      placed.set(set, ip);
    }
    for (let attempt = 0; attempt < MAX_RETRIES; attempt++) {
      const all = await this.kv.range('');
      const mine = all.get(handleKey(owner));
      const held = parseJSON<HandleRecord>(mine);
      if (held) {
        return { existing: true, ips: held.ips.map((s) => { const ip = parseIP(s)!; return { ip, range: this.rangeOf(ip) ?? this.cfg.ranges[0][0] }; }) };
      }
      const taken = new Set<string>();
      for (const k of all.keys()) if (k.startsWith('ip/')) taken.add(k.slice(3));
      const chosen: { ip: IP; range: Range }[] = [];
      for (const [i, set] of this.cfg.ranges.entries()) {
        const want = placed.get(i);
        if (want) {
          const s = formatIP(want);
          if (taken.has(s)) {
            const other = parseJSON<IpRecord>(all.get(ipKey(s)));
            throw new CniError(ErrorCode.InvalidNetworkConfig, `requested address ${s} is already held by ${other ? `${other.containerID}/${other.ifname}` : 'another attachment'}`, 'ips');
          }
          chosen.push({ ip: want, range: this.rangeOf(want)! });
        } else {
          chosen.push(this.nextFree(set, i, taken, parseJSON<string>(all.get(cursorKey(i)))));
        }
        taken.add(formatIP(chosen[chosen.length - 1].ip));
      }
      const since = new Date().toISOString();
      const ips = chosen.map((c) => formatIP(c.ip));
      const ok = await this.kv.txn({
        if: [{ key: handleKey(owner), version: 0 }, ...ips.map((ip) => ({ key: ipKey(ip), version: 0 }))],
        put: [
          { key: handleKey(owner), value: JSON.stringify({ ips, since } satisfies HandleRecord) },
          ...ips.map((ip) => ({ key: ipKey(ip), value: JSON.stringify({ ...owner, since } satisfies IpRecord) })),
          ...chosen.map((c, i) => (placed.has(i) ? null : { key: cursorKey(i), value: JSON.stringify(formatIP(c.ip)) })).filter((x): x is { key: string; value: string } => !!x),
        ],
      });
      if (ok) return { existing: false, ips: chosen };
      await new Promise((r) => setTimeout(r, Math.random() * 3 * (attempt + 1)));
    }
    throw new CniError(ErrorCode.TryAgainLater, `IPAM store ${this.kv.where} stayed contended through ${MAX_RETRIES} attempts`, this.kv.where);
  }

  /** Releases whatever the owner holds; releasing nothing is success. Returns the released addresses. */
  async release(owner: Owner): Promise<string[]> {
    for (let attempt = 0; attempt < MAX_RETRIES; attempt++) {
      const all = await this.kv.range('');
      const handle = all.get(handleKey(owner));
      const held = parseJSON<HandleRecord>(handle);
      // The handle lists its addresses; without a readable handle, look from the address side, so a
      // half-written record can never leak an address.
      const candidates = held ? held.ips.map((ip) => ipKey(ip)) : [...all.keys()].filter((k) => k.startsWith('ip/'));
      const ips = new Map<string, Entry>();
      for (const k of candidates) {
        const e = all.get(k);
        const rec = parseJSON<IpRecord>(e);
        if (e && rec && rec.containerID === owner.containerID && rec.ifname === owner.ifname) ips.set(k, e);
      }
      if (!handle && !ips.size) return [];
      const ok = await this.kv.txn({
        if: [{ key: handleKey(owner), version: handle?.version ?? 0 }, ...[...ips].map(([key, e]) => ({ key, version: e.version }))],
        del: [...(handle ? [handleKey(owner)] : []), ...ips.keys()],
      });
      if (ok) return [...ips.keys()].map((k) => k.slice(3));
    }
    throw new CniError(ErrorCode.TryAgainLater, `IPAM store ${this.kv.where} stayed contended through ${MAX_RETRIES} attempts`, this.kv.where);
  }

  /** The addresses an owner holds (empty when none). */
  async holds(owner: Owner): Promise<string[]> {
    return parseJSON<HandleRecord>(await this.kv.get(handleKey(owner)))?.ips ?? [];
  }

  async list(): Promise<Allocation[]> {
    const out: Allocation[] = [];
    for (const [k, e] of await this.kv.range('ip/')) {
      const rec = parseJSON<IpRecord>(e);
      out.push({ ip: k.slice(3), containerID: rec?.containerID ?? '?', ifname: rec?.ifname ?? '?', since: rec?.since ?? '' });
    }
    return out.sort((a, b) => ipToBigInt(parseIP(a.ip)!) < ipToBigInt(parseIP(b.ip)!) ? -1 : 1);
  }

  /** Releases every attachment not in the valid set. Returns what was released. */
  async gc(valid: Owner[]): Promise<Allocation[]> {
    const keep = new Set(valid.map((v) => `${v.containerID}\0${v.ifname}`));
    const stale = new Map<string, Owner>();
    for (const a of await this.list()) {
      if (!keep.has(`${a.containerID}\0${a.ifname}`)) stale.set(`${a.containerID}\0${a.ifname}`, a);
    }
    const released: Allocation[] = [];
    for (const owner of stale.values()) {
      for (const ip of await this.release(owner)) released.push({ ip, containerID: owner.containerID, ifname: owner.ifname, since: '' });
    }
    return released;
  }

  /** Free addresses per range set (for STATUS). */
  async free(): Promise<bigint[]> {
    const taken = [...(await this.kv.range('ip/')).keys()].map((k) => parseIP(k.slice(3))!);
    return this.cfg.ranges.map((set, i) => setCapacity(set) - BigInt(taken.filter((ip) => this.setOf(ip) === i).length));
  }
}
