import { CniError, ErrorCode } from '../lib/cni/errors.js';
import { formatIP, ipEqual, parseIP, type IP } from '../lib/ip/addr.js';
import type { Entry, KV } from '../lib/store/kv.js';
import {
  addressAt, blockKey, blockOfIP, blocksOf, emptyBlock, freeOffset, inSet, offsetOf, recordCidr, usable, type BlockRef,
} from './blocks.js';
import { describeSet, setCapacity, type IpamConfig, type Range } from './config.js';
import {
  damaged, handleId, handleKey, MAX_RETRIES, readBlocks, readBlocksNamed, readHandle, readableHandle, readHandles, releaseSlots,
  type Allocation, type Handle, type HandleRecord, type Loaded, type Owner,
} from './records.js';
import { forgetNode, type Retired } from './retire.js';

export type { Allocation, Handle, HandleRecord, Owner } from './records.js';

/** Present while tetherd (peer mode) forbids new allocations on the node; its value says why. */
export const AGENT_HOLD_KEY = 'agent/hold';

/**
 * Peer mode: tetherd's word that the store is as the table says, until a time (JSON {"until": ms since
 * the epoch}), renewed while it runs. Without it fresh, nothing is allocated: a node booted after a long
 * absence may have been reclaimed, and only the running agent can learn so and close its blocks.
 */
export const AGENT_LEASE_KEY = 'agent/lease';
export interface AgentLease { until: number }

export interface BlockInfo {
  cidr: string;
  node: string;
  used: number;
  size: number;
}

export interface GcOptions {
  /** Attachments to keep (the runtime's valid set); others of this node are stale. */
  valid?: Owner[];
  /** Without a valid set: decides staleness from the record (e.g. its namespace is gone). */
  isStale?: (h: Handle) => boolean;
  /** Handles younger than this are kept: their ADD may still be in flight. */
  graceMs?: number;
  /** Whose handles to consider; this node by default. */
  node?: string;
}

export interface Allocated {
  ips: { ip: IP; range: Range }[];
  /** True when the attachment already held these addresses (a retried ADD): nothing new was reserved. */
  existing: boolean;
}

/** A block slot holds "containerID/ifname"; the interface name has no slash. */
function ownerOfSlot(slot: string): Owner {
  const slash = slot.lastIndexOf('/');
  return { containerID: slot.slice(0, slash), ifname: slot.slice(slash + 1) };
}

/** A block this ADD changes, with the version it was read at (0: it is being claimed now). */
interface Touched extends Loaded { ref: BlockRef }

/**
 * Calico-style allocation over any KV. A node claims blocks of the pool (create-if-absent, with its
 * name as affinity) and allocates inside them; each ADD is one conditional transaction writing the
 * block(s) it took addresses from and the attachment's handle, conditioned on the versions it read.
 * A lost race reads again and retries. Nothing is locked across the decision, so the same code is
 * correct on the embedded store and on etcd, and its cost does not grow with the allocations held.
 */
export class Allocator {
  constructor(private readonly kv: KV, private readonly cfg: IpamConfig) {}

  /** The claimed blocks of a set, in address order. */
  private claimedIn(setIndex: number, blocks: Map<string, Loaded>): (Loaded & { key: string; ref: BlockRef })[] {
    const set = this.cfg.ranges[setIndex];
    const out: (Loaded & { key: string; ref: BlockRef })[] = [];
    for (const [key, l] of blocks) {
      const ref = inSet(set, recordCidr(l.rec));
      if (ref) out.push({ ...l, key, ref });
    }
    return out;
  }

  private exhausted(setIndex: number, blocks: Map<string, Loaded>): CniError {
    const set = this.cfg.ranges[setIndex];
    const used = this.claimedIn(setIndex, blocks).reduce((n, b) => n + b.rec.allocations.filter((a) => a !== null).length, 0);
    const why = this.cfg.strictAffinity ? ' (strictAffinity: other nodes\' blocks are not borrowed from)' : '';
    return new CniError(ErrorCode.TryAgainLater,
      `no free address in range set ${describeSet(set)} of network "${this.cfg.network}": ${used} of ${setCapacity(set)} in use${why}`,
      `ipam.ranges[${setIndex}]`);
  }

  /**
   * Where to take one address of a set from: the node's own blocks first, then a block nobody has
   * claimed (claimed now), then, unless strictAffinity, a free address in another node's block.
   * Everything it looks at is a block already claimed, plus at most one unclaimed: the cost follows
   * the number of blocks in use, never the size of the pool.
   */
  private choose(setIndex: number, blocks: Map<string, Loaded>, touched: Map<string, Touched>, id: string): { ip: IP; range: Range } {
    const set = this.cfg.ranges[setIndex];
    const me = this.cfg.nodeName;
    const take = (key: string, ref: BlockRef, l: Loaded) => {
      const t = touched.get(key) ?? { ...l, rec: { ...l.rec, allocations: [...l.rec.allocations] }, ref };
      const i = freeOffset(ref, t.rec, this.cfg.exclude);
      if (i < 0) return null;
      t.rec.allocations[i] = id;
      t.rec.next = (i + 1) % t.rec.allocations.length;
      touched.set(key, t);
      return { ip: addressAt(ref.cidr, i), range: ref.range };
    };
    // A closed block gives no new address, whoever's it is (its holders keep theirs until DEL).
    const claimed = this.claimedIn(setIndex, blocks).filter((b) => b.rec.closed === undefined);
    const mine = claimed.filter((b) => b.rec.node === me);
    for (const b of mine) {
      const got = take(b.key, b.ref, touched.get(b.key) ?? b);
      if (got) return got;
    }
    if (this.cfg.agentBlocks) throw this.noAgentBlock(setIndex, blocks, mine.length);
    const capped = this.cfg.maxBlocksPerNode > 0 && mine.length >= this.cfg.maxBlocksPerNode;
    let unclaimed: BlockRef | undefined;
    if (!capped) {
      for (const ref of blocksOf(set, this.cfg.blockSize)) {
        const key = blockKey(ref.cidr);
        if (!blocks.has(key) && !touched.has(key)) { unclaimed = ref; break; }
      }
    }
    if (unclaimed) {
      const got = take(blockKey(unclaimed.cidr), unclaimed, { rec: emptyBlock(unclaimed, me), version: 0 });
      if (got) return got;
    }
    if (!this.cfg.strictAffinity) {
      for (const b of claimed.filter((x) => x.rec.node !== me)) {
        const got = take(b.key, b.ref, touched.get(b.key) ?? b);
        if (got) return got;
      }
    }
    if (capped) {
      throw new CniError(ErrorCode.TryAgainLater, `node "${me}" holds its limit of ${this.cfg.maxBlocksPerNode} blocks in range set ${describeSet(set)} of network "${this.cfg.network}", all full`, 'ipam.maxBlocksPerNode');
    }
    throw this.exhausted(setIndex, blocks);
  }

  /** Peer mode: the node's blocks are full (or it has none yet); tetherd is asking the other nodes for more. */
  private noAgentBlock(setIndex: number, blocks: Map<string, Loaded>, mine: number): CniError {
    const set = this.cfg.ranges[setIndex];
    return new CniError(ErrorCode.TryAgainLater,
      mine ? `the ${mine} blocks tetherd gave node "${this.cfg.nodeName}" in range set ${describeSet(set)} of network "${this.cfg.network}" are full; tetherd asks the other nodes for space`
        : `node "${this.cfg.nodeName}" owns no block of range set ${describeSet(set)} of network "${this.cfg.network}" yet: tetherd (peer mode) has not been given space (is it running, and has the network agreed its first split?)`,
      `ipam.agentBlocks: ${this.kv.where}`);
  }

  /** A specific address: from whatever block holds it (claimed for this node if nobody has it yet). */
  private takeRequested(ip: IP, blocks: Map<string, Loaded>, touched: Map<string, Touched>, id: string, setIndex: number) {
    const ref = blockOfIP(this.cfg.ranges[setIndex], ip, this.cfg.blockSize)!;
    const key = blockKey(ref.cidr);
    const held = touched.get(key) ?? blocks.get(key);
    if (this.cfg.agentBlocks && held?.rec.node !== this.cfg.nodeName) {
      throw new CniError(ErrorCode.InvalidNetworkConfig, `requested address ${formatIP(ip)} is in a block this node does not own (peer mode: only the owner's node allocates there)`, 'ips');
    }
    if (held?.rec.closed !== undefined) {
      throw new CniError(ErrorCode.InvalidNetworkConfig, `requested address ${formatIP(ip)} is in block ${held.rec.cidr}, which gives no new address: ${held.rec.closed}`, 'ips');
    }
    const l = touched.get(key) ?? blocks.get(key) ?? { rec: emptyBlock(ref, this.cfg.nodeName), version: 0 };
    const i = offsetOf(ref.cidr, ip);
    if (!usable(ref, i, this.cfg.exclude)) throw new CniError(ErrorCode.InvalidNetworkConfig, `requested address ${formatIP(ip)} is excluded or is the gateway`, 'ips');
    if (l.rec.allocations[i] !== null) throw new CniError(ErrorCode.InvalidNetworkConfig, `requested address ${formatIP(ip)} is already held by ${l.rec.allocations[i]}`, 'ips');
    const t = touched.get(key) ?? { ...l, rec: { ...l.rec, allocations: [...l.rec.allocations] }, ref };
    t.rec.allocations[i] = id;
    touched.set(key, t);
    return { ip, range: ref.range };
  }

  private setOf(ip: IP): number {
    return this.cfg.ranges.findIndex((set) => blockOfIP(set, ip, this.cfg.blockSize) !== undefined);
  }

  private rangeOf(ip: IP): Range {
    for (const set of this.cfg.ranges) {
      const b = blockOfIP(set, ip, this.cfg.blockSize);
      if (b) return b.range;
    }
    return this.cfg.ranges[0][0];
  }

  /** Reserves one address per range set for the owner, or returns what it already holds. */
  async allocate(owner: Owner, requested: IP[] = [], netns?: string): Promise<Allocated> {
    const placed = new Map<number, IP>();
    for (const ip of requested) {
      const set = this.setOf(ip);
      if (set < 0) throw new CniError(ErrorCode.InvalidNetworkConfig, `requested address ${formatIP(ip)} is in no range of network "${this.cfg.network}"`, 'ips');
      if (placed.has(set)) throw new CniError(ErrorCode.InvalidNetworkConfig, `two requested addresses fall in range set ${set}: only one address per set`, 'ips');
      if (this.cfg.ranges[set].some((r) => ipEqual(r.gateway, ip))) throw new CniError(ErrorCode.InvalidNetworkConfig, `requested address ${formatIP(ip)} is the gateway`, 'ips');
      placed.set(set, ip);
    }
    const id = handleId(owner);
    for (let attempt = 0; attempt < MAX_RETRIES; attempt++) {
      const handle = await this.kv.get(handleKey(owner));
      const held = this.handleRecord(handleKey(owner), handle);
      if (!held && this.cfg.agentBlocks) await this.checkAgentHold();
      if (held) return { existing: true, ips: held.ips.map((s) => { const ip = parseIP(s)!; return { ip, range: this.rangeOf(ip) }; }) };
      const blocks = await readBlocks(this.kv);
      const touched = new Map<string, Touched>();
      const chosen = this.cfg.ranges.map((_, i) => (placed.has(i) ? this.takeRequested(placed.get(i)!, blocks, touched, id, i) : this.choose(i, blocks, touched, id)));
      const since = new Date().toISOString();
      const ips = chosen.map((c) => formatIP(c.ip));
      const ok = await this.kv.txn({
        if: [{ key: handleKey(owner), version: 0 }, ...[...touched].map(([key, t]) => ({ key, version: t.version }))],
        put: [
          { key: handleKey(owner), value: JSON.stringify({ ips, since, node: this.cfg.nodeName, ...(netns ? { netns } : {}) } satisfies HandleRecord) },
          ...[...touched].map(([key, t]) => ({ key, value: JSON.stringify(t.rec) })),
        ],
      });
      if (ok) return { existing: false, ips: chosen };
      await new Promise((r) => setTimeout(r, Math.random() * 3 * (attempt + 1)));
    }
    throw new CniError(ErrorCode.TryAgainLater, `IPAM store ${this.kv.where} stayed contended through ${MAX_RETRIES} attempts`, this.kv.where);
  }

  /** Peer mode: tetherd holds allocation while it may have been reclaimed (back after a long absence), or is not running. */
  private async checkAgentHold(): Promise<void> {
    const hold = await this.kv.get(AGENT_HOLD_KEY);
    if (hold) throw new CniError(ErrorCode.TryAgainLater, `tetherd holds allocation on this node: ${hold.value}`, `${this.kv.where}: ${AGENT_HOLD_KEY}`);
    const lease = await this.kv.get(AGENT_LEASE_KEY);
    let until = 0;
    try { until = lease ? Number((JSON.parse(lease.value) as AgentLease).until) || 0 : 0; } catch { /* unreadable: no word */ }
    if (until <= Date.now()) {
      throw new CniError(ErrorCode.TryAgainLater,
        lease ? `tetherd (peer mode) last vouched for this node's blocks ${Math.round((Date.now() - until) / 1000)} s ago: allocation waits until it runs again (the node may have been reclaimed meanwhile)`
          : 'tetherd (peer mode) has not yet vouched for this node\'s blocks: allocation waits until it runs',
        `${this.kv.where}: ${AGENT_LEASE_KEY}`);
    }
  }

  /**
   * Releases whatever the owner holds; releasing nothing is success. Returns the released addresses.
   * With onlyVersion, releases only if the handle is still the one read then (GC's re-check: an
   * attachment re-added meanwhile keeps its address); returns null when it was not.
   */
  async release(owner: Owner): Promise<string[]>;
  async release(owner: Owner, onlyVersion: number): Promise<string[] | null>;
  async release(owner: Owner, onlyVersion?: number): Promise<string[] | null> {
    const id = handleId(owner);
    for (let attempt = 0; attempt < MAX_RETRIES; attempt++) {
      const handle = await this.kv.get(handleKey(owner));
      if (onlyVersion !== undefined && (handle?.version ?? 0) !== onlyVersion) return null;
      // A damaged handle names no blocks: every block is searched below, and the handle goes.
      const held = readableHandle(handle);
      // The handle names the blocks, and only those are read. Without a readable handle, or when they do
      // not hold every address it lists (the ranges or the block size were edited since the ADD), every
      // block is searched: neither a damaged handle nor an edited network can leak an address.
      const named = held?.ips.map((s) => { const ip = parseIP(s); const set = ip ? this.setOf(ip) : -1; return set < 0 ? '' : blockKey(blockOfIP(this.cfg.ranges[set], ip!, this.cfg.blockSize)!.cidr); });
      let plan = named && named.every(Boolean) ? releaseSlots(id, await readBlocksNamed(this.kv, [...new Set(named)])) : undefined;
      if (!plan || plan.released.length < held!.ips.length) plan = releaseSlots(id, await readBlocks(this.kv));
      const { released, puts } = plan;
      const conds = [{ key: handleKey(owner), version: handle?.version ?? 0 }, ...plan.conds];
      if (!handle && !puts.length) return [];
      const ok = await this.kv.txn({ if: conds, put: puts, del: handle ? [handleKey(owner)] : [] });
      if (ok) return released;
    }
    throw new CniError(ErrorCode.TryAgainLater, `IPAM store ${this.kv.where} stayed contended through ${MAX_RETRIES} attempts`, this.kv.where);
  }

  /** A handle's record; undefined when absent; code 11 naming the key when damaged. */
  private handleRecord(key: string, e: Entry | undefined): HandleRecord | undefined {
    if (!e) return undefined;
    const r = readHandle(e);
    if ('problem' in r) throw damaged(this.kv.where, key, r.problem);
    return r;
  }

  /** The addresses an owner holds (empty when none). */
  async holds(owner: Owner): Promise<string[]> {
    return this.handleRecord(handleKey(owner), await this.kv.get(handleKey(owner)))?.ips ?? [];
  }

  /** Every allocation, from the blocks (the truth), with the handle's time when it has one. */
  async list(): Promise<Allocation[]> {
    const handles = await this.kv.range('handle/');
    const out: Allocation[] = [];
    for (const { rec } of (await readBlocks(this.kv)).values()) {
      const cidr = recordCidr(rec);
      rec.allocations.forEach((a, i) => {
        if (a === null) return;
        const owner = ownerOfSlot(a);
        const h = readableHandle(handles.get(handleKey(owner)));
        out.push({ ip: formatIP(addressAt(cidr, i)), ...owner, node: rec.node, since: h?.since ?? '' });
      });
    }
    return out;
  }

  /**
   * Who holds ip, undefined when nobody: for callers that know addresses, not owners (Docker's
   * ReleaseAddress names only the address). Reads the one block that holds it.
   */
  async holderOf(ip: IP): Promise<Owner | undefined> {
    const set = this.setOf(ip);
    if (set < 0) return undefined;
    const key = blockKey(blockOfIP(this.cfg.ranges[set], ip, this.cfg.blockSize)!.cidr);
    const l = (await readBlocksNamed(this.kv, [key])).get(key);
    const slot = l?.rec.allocations[offsetOf(recordCidr(l.rec), ip)];
    return slot ? ownerOfSlot(slot) : undefined;
  }

  async blockInfo(): Promise<BlockInfo[]> {
    return [...(await readBlocks(this.kv)).values()].map(({ rec }) => ({ cidr: rec.cidr, node: rec.node, used: rec.allocations.filter((a) => a !== null).length, size: rec.allocations.length }));
  }

  async handles(): Promise<Handle[]> { return readHandles(this.kv); }

  /**
   * Releases this node's stale attachments: not in the valid set (or judged stale by isStale), older
   * than the grace period, and still unchanged when released (each release is conditioned on the
   * handle version read here), so a live container never loses its address.
   */
  async gc(o: GcOptions = {}): Promise<Allocation[]> {
    const node = o.node ?? this.cfg.nodeName;
    const keep = o.valid ? new Set(o.valid.map(handleId)) : undefined;
    const now = Date.now();
    const released: Allocation[] = [];
    for (const h of await this.handles()) {
      if (h.record.node !== node) continue;
      if (o.graceMs && now - Date.parse(h.record.since) < o.graceMs) continue;
      const stale = keep ? !keep.has(handleId(h)) : (o.isStale?.(h) ?? false);
      if (!stale) continue;
      const ips = await this.release(h, h.version);
      for (const ip of ips ?? []) released.push({ ip, containerID: h.containerID, ifname: h.ifname, node, since: h.record.since });
    }
    return released;
  }

  /** A node that is gone for good (ipam/retire.ts). */
  forgetNode(node: string): Promise<Retired> { return forgetNode(this.kv, node); }

  /** Free addresses per range set (for STATUS): capacity less what the set's blocks hold. */
  async free(): Promise<bigint[]> {
    const blocks = await readBlocks(this.kv);
    return this.cfg.ranges.map((set, i) => setCapacity(set) - BigInt(this.claimedIn(i, blocks).reduce((n, b) => n + b.rec.allocations.filter((a) => a !== null).length, 0)));
  }
}
