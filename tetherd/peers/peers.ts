import { nodeCrypto } from '../../lib/builtin.js';
import { Table } from './table.js';
import { MAX_VOTES, type Member, type Run, type StateMessage, type Vote } from './wire.js';

/** 16 hex digits of SHA-256: names a configuration or a peer set in a message. */
export function digest(parts: string[]): string {
  return nodeCrypto().createHash('sha256').update(parts.join('\n')).digest('hex').slice(0, 16);
}

export interface PeerOptions {
  name: string;
  address: string;
  port: number;
  vtepMAC: string;
  /** digest() of network, pool and block size. */
  config: string;
  blocks: number;
  /** The configured peers' underlay addresses: the first split waits for every one of them (this node counts itself in). */
  initialPeers: string[];
  /** This node owns the whole pool at once (exactly one node of a network may say so); others join it. */
  seed: boolean;
  /** A node silent this long to a voter may be voted dead (ms). */
  voteSilenceMs: number;
  /** A member silent this long is proposed for reclaim automatically (ms; 0: only by the operator). */
  reclaimAfterMs: number;
  /** Members heard within this long count as reachable: only they are donors or receivers (a few gossip intervals, ms). */
  reachableMs: number;
  /**
   * A node holding fewer empty blocks than this asks for more, and a donor gives only what leaves it at
   * least this many: the same threshold on both sides, so space never ping-pongs between two nodes.
   */
  lowWater: number;
}

/** What the agent persists (tetherd/peers/persist.ts), enough to come back owning exactly what it owned. */
export interface Snapshot {
  format: 'tether-peers/1';
  config: string;
  blocks: number;
  self: Member;
  members: Member[];
  retired: string[];
  table: Run[];
  /** When it was written (ms since the epoch). */
  savedAt: number;
}

export interface Donation { to: string; blocks: number[] }

/**
 * One node's view of the network, as pure state: the members' records, the ownership table, the
 * retired set. The agent feeds it decoded messages and the clock, asks it what to send and what to
 * donate, and writes the blocks it owns into the node's embedded store. Nothing here does I/O.
 */
export class PeerNode {
  readonly self: Member;
  readonly members = new Map<string, Member>();
  readonly retired = new Set<string>();
  readonly table: Table;
  /** Last time a message came from each member directly (not relayed). */
  readonly lastHeard = new Map<string, number>();
  clashes = 0;
  /** The member's record version we last donated against: one donation per request. */
  private readonly donatedAt = new Map<string, number>();
  private readonly startedAt: number;
  /**
   * Back from a state saved longer ago than voteSilence: the others may have voted us dead meanwhile
   * and handed our blocks to an heir, so nothing is allocated until one of them has told us (any
   * message carries the retired set). Down for less than that, nobody can have voted (a vote needs that
   * much silence), so we allocate at once, even alone.
   */
  private awaitingWord = false;
  /**
   * What each sender's latest message said that a leaving node needs: the version of our own record in
   * it (it knows we left once that is our left record's), and the blocks it owns there (block -> version:
   * it took a block we handed it once that version is ours).
   */
  private readonly views = new Map<string, { self: number; owns: Map<number, number> }>();
  /** When leave() ran (ms), and every block this node handed on since (at the leave, and strays after it). */
  private leftAt = 0;
  private readonly handed = new Set<number>();

  constructor(private readonly o: PeerOptions, now: number, saved?: Snapshot) {
    const initial = o.seed || !o.initialPeers.length ? '' : digest([...new Set([...o.initialPeers, o.address])].sort());
    this.table = new Table(o.blocks);
    this.self = { name: o.name, version: 1, address: o.address, port: o.port, vtepMAC: o.vtepMAC, initial, hasTable: false, left: false, free: 0, wants: 0, votes: [] };
    this.startedAt = now;
    if (saved && saved.config === o.config && saved.blocks === o.blocks && saved.self.name === o.name) {
      this.table.merge(saved.table);
      for (const m of saved.members) if (m.name !== o.name) this.members.set(m.name, m);
      for (const r of saved.retired) this.retired.add(r);
      Object.assign(this.self, { version: saved.self.version + 1, hasTable: saved.self.hasTable || !this.table.isEmpty(), left: saved.self.left, votes: saved.self.votes });
      this.awaitingWord = now - saved.savedAt >= o.voteSilenceMs && this.live().length > 1;
    }
  }

  get name(): string { return this.o.name; }
  get isRetired(): boolean { return this.retired.has(this.o.name); }
  /** The blocks this node may allocate from: none once it has left or been retired. */
  owned(): number[] { return this.self.left || this.isRetired ? [] : this.table.ownedBy(this.o.name); }
  /** The blocks tether-ipam may allocate from now: owned, and not waiting for word after a long absence. */
  allocatable(): number[] { return this.awaitingWord ? [] : this.owned(); }
  get waiting(): boolean { return this.awaitingWord; }

  private bump(change: Partial<Member>): void { Object.assign(this.self, change); this.self.version++; }

  snapshot(now: number): Snapshot {
    return { format: 'tether-peers/1', config: this.o.config, blocks: this.o.blocks, self: { ...this.self }, members: [...this.members.values()], retired: [...this.retired], table: this.table.runs(), savedAt: now };
  }

  message(): StateMessage {
    return { type: 'state', config: this.o.config, blocks: this.o.blocks, members: [{ ...this.self }, ...this.members.values()], retired: [...this.retired].sort(), table: this.table.runs() };
  }

  /** Members still in the network (not left, not retired), this node included when it is. */
  live(): Member[] {
    return [this.self, ...this.members.values()].filter((m) => !m.left && !this.retired.has(m.name));
  }

  /** Merges a peer's state; returns whether anything of ours changed (then it is persisted and sent on). */
  receive(m: StateMessage, from: string, now: number): { changed: boolean; rejected?: string } {
    if (m.config !== this.o.config || m.blocks !== this.o.blocks) return { changed: false, rejected: `${from} runs another network configuration (pool, block size or name differ)` };
    this.lastHeard.set(from, now);
    this.awaitingWord = false;
    const owns = new Map<number, number>();
    for (const run of m.table) if (run.owner === from) for (let i = run.start; i < run.start + run.count; i++) owns.set(i, run.version);
    this.views.set(from, { self: m.members.find((r) => r.name === this.o.name)?.version ?? 0, owns });
    let changed = false;
    for (const r of m.retired) if (!this.retired.has(r)) { this.retired.add(r); changed = true; }
    for (const rec of m.members) {
      if (rec.name === this.o.name) {
        // Our own record, newer than ours: our state was lost or restored from an old copy. Ours goes above it.
        if (rec.version > this.self.version) { this.self.version = rec.version + 1; changed = true; }
        continue;
      }
      const had = this.members.get(rec.name);
      if (!had || rec.version > had.version) { this.members.set(rec.name, rec); changed = true; }
    }
    const merged = this.table.merge(m.table);
    this.clashes += merged.clashes;
    if (merged.changed.length) changed = true;
    if (!this.self.hasTable && !this.table.isEmpty()) this.bump({ hasTable: true });
    return { changed };
  }

  /** The first split, when it is agreed: null while waiting, with what is missing. */
  splitProblem(): string | null {
    if (this.self.hasTable) return null;
    if (this.o.seed) return null;
    if (!this.o.initialPeers.length) return 'joining: waiting for a member\'s table';
    const all = [this.self, ...this.members.values()];
    if (all.some((m) => m.hasTable)) return 'waiting for the table of a member that has one';
    const want = [...new Set([...this.o.initialPeers, this.o.address])];
    const missing = want.filter((a) => !all.some((m) => m.address === a && m.initial === this.self.initial));
    return missing.length ? `waiting for the configured peers ${missing.join(', ')} (the first split needs all of them, with the same peer list)` : null;
  }

  /** One step of the protocol's own decisions: split, votes, an election won. Returns whether anything changed. */
  tick(now: number): boolean {
    let changed = false;
    if (!this.self.hasTable && this.splitProblem() === null) {
      if (this.o.seed) this.table.split([this.o.name]);
      else {
        const all = [this.self, ...this.members.values()];
        this.table.split([...new Set([...this.o.initialPeers, this.o.address])].map((a) => all.find((m) => m.address === a && m.initial === this.self.initial)!.name));
      }
      this.bump({ hasTable: true });
      changed = true;
    }
    if (this.self.left || this.isRetired) return changed;
    changed = this.vote(now) || changed;
    changed = this.elect() || changed;
    return changed;
  }

  private silentFor(name: string, now: number): number { return now - (this.lastHeard.get(name) ?? this.startedAt); }
  private voted(dead: string): Vote | undefined { return this.self.votes.find((v) => v.dead === dead); }

  /** The operator's reclaim (cnictl peers reclaim): this node proposes itself as the heir. */
  proposeReclaim(dead: string, now: number): string | null {
    if (dead === this.o.name) return 'a node cannot reclaim itself';
    const m = this.members.get(dead);
    if (!m) return `${dead} is no member of this network`;
    if (this.retired.has(dead)) return `${dead} is already reclaimed`;
    if (m.left) return `${dead} left and gave its blocks away`;
    const silent = this.silentFor(dead, now);
    if (silent < this.o.voteSilenceMs) return `${dead} was heard ${Math.round(silent / 1000)} s ago; a node is reclaimed only after ${this.o.voteSilenceMs / 1000} s of silence`;
    const v = this.voted(dead);
    if (v) return v.heir === this.o.name ? null : `this node already voted ${v.heir} heir of ${dead}`;
    this.castVote({ dead, heir: this.o.name });
    return null;
  }

  private castVote(v: Vote): void {
    // Votes on nodes already reclaimed are spent: dropped to keep the record small.
    const votes = this.self.votes.filter((x) => !this.retired.has(x.dead)).concat(v).slice(-MAX_VOTES);
    this.bump({ votes });
  }

  /**
   * Joins proposals: one vote per dead node, for the first heir seen (in name order), and only if the
   * node has been silent to us too. A node that is heard from is never voted dead, so a live node
   * reachable by a majority is never reclaimed. With reclaimAfter, the first live member proposes itself.
   */
  private vote(now: number): boolean {
    let changed = false;
    const live = this.live();
    const proposals = new Map<string, string>();
    for (const m of this.members.values()) for (const v of m.votes) {
      const best = proposals.get(v.dead);
      if (!best || v.heir < best) proposals.set(v.dead, v.heir);
    }
    if (this.o.reclaimAfterMs > 0) {
      const heard = live.filter((m) => m.name === this.o.name || this.silentFor(m.name, now) < this.o.voteSilenceMs).map((m) => m.name).sort();
      for (const m of live) {
        if (m.name === this.o.name || this.silentFor(m.name, now) < this.o.reclaimAfterMs) continue;
        if (heard[0] === this.o.name && !proposals.has(m.name)) proposals.set(m.name, this.o.name);
      }
    }
    for (const [dead, heir] of proposals) {
      if (dead === this.o.name || this.retired.has(dead) || this.voted(dead) || !this.members.has(dead)) continue;
      if (this.members.get(dead)!.left || this.silentFor(dead, now) < this.o.voteSilenceMs) continue;
      this.castVote({ dead, heir });
      changed = true;
    }
    return changed;
  }

  /** A strict majority of the live members (the dead one not counted) voted us heir: its blocks become ours. */
  private elect(): boolean {
    let changed = false;
    for (const v of this.self.votes) {
      if (v.heir !== this.o.name || this.retired.has(v.dead)) continue;
      const electorate = this.live().filter((m) => m.name !== v.dead);
      const ayes = electorate.filter((m) => m.votes.some((x) => x.dead === v.dead && x.heir === this.o.name)).length;
      if (ayes * 2 <= electorate.length) continue;
      this.retired.add(v.dead);
      this.table.inherit(v.dead, this.o.name);
      this.self.version++;
      changed = true;
    }
    return changed;
  }

  /** Our empty blocks as the agent reads them from the embedded store: bumps our record only when it changes. */
  setSupply(free: number): boolean {
    // Nothing is asked before the table exists (the split may still give us space), nor after we left.
    const wants = !this.self.hasTable || this.self.left || this.isRetired ? 0 : Math.max(0, this.o.lowWater - free);
    if (this.self.free === free && this.self.wants === wants) return false;
    this.bump({ free, wants });
    return true;
  }

  /**
   * What to give away, from our empty blocks: to each reachable member asking, if we are the reachable
   * member with the most free blocks (ties: the name that sorts first), half of what we can spare, at most what it asks.
   * The agent removes the blocks from its store (only if still empty) and then calls give().
   */
  donations(emptyOwned: number[], now: number): Donation[] {
    if (this.self.left || this.isRetired) return [];
    const out: Donation[] = [];
    let spare = emptyOwned.filter((i) => this.table.owners[i] === this.o.name);
    // Only members we hear: across a partition, a donor on the other side cannot give, and must not be waited for.
    // Heard since this start, too: a record restored from our saved state may be of a node that has left
    // since (its blocks would stay in a left member's name).
    const live = this.live().filter((m) => m.name === this.o.name || (this.lastHeard.has(m.name) && this.silentFor(m.name, now) < this.o.reachableMs));
    for (const m of live) {
      if (m.name === this.o.name || m.wants <= 0 || !m.hasTable || this.donatedAt.get(m.name) === m.version) continue;
      const donors = live.filter((d) => d.name !== m.name && (d.name === this.o.name ? spare.length : d.free) > this.o.lowWater)
        .sort((a, b) => (b.name === this.o.name ? spare.length : b.free) - (a.name === this.o.name ? spare.length : a.free) || (a.name < b.name ? -1 : 1));
      if (donors[0]?.name !== this.o.name) continue;
      const n = Math.min(m.wants, Math.ceil((spare.length - this.o.lowWater) / 2));
      if (n <= 0) continue;
      out.push({ to: m.name, blocks: spare.slice(-n) });
      spare = spare.slice(0, -n);
      this.donatedAt.set(m.name, m.version);
    }
    return out;
  }

  /** An owner's explicit transfer; false (nothing changed) if we do not own every block. */
  give(to: string, blocks: number[]): boolean {
    if (this.self.left || this.isRetired || !this.live().some((m) => m.name === to)) return false;
    if (!this.table.transfer(this.o.name, to, blocks)) return false;
    this.self.version++;
    return true;
  }

  /** Where a leaving node's blocks go: the live member holding fewest (ties: the name that sorts first). */
  private heir(): string | undefined {
    const counts = (n: string) => this.table.ownedBy(n).length;
    return this.live().filter((m) => m.name !== this.o.name).sort((a, b) => counts(a.name) - counts(b.name) || (a.name < b.name ? -1 : 1))[0]?.name;
  }

  /** tetherd leave: every block to the live member holding fewest, then the record says we left. */
  leave(now: number): string | null {
    const to = this.heir();
    if (!to) return 'no other live member to give the blocks to';
    const mine = this.table.ownedBy(this.o.name);
    this.table.transfer(this.o.name, to, mine);
    for (const i of mine) this.handed.add(i);
    this.leftAt = now;
    this.bump({ left: true, free: 0, wants: 0 });
    return null;
  }

  /**
   * Blocks the table gives this node after it left: a donor that decided before it heard of the leave
   * (a node that asked for space and leaves at once), or a copy of the table older than the leave. A left
   * node allocates nothing and no reclaim takes a left member's blocks, so unless they are handed on
   * (handOn) they are lost to the network for good.
   */
  strays(): number[] { return this.self.left && !this.isRetired ? this.table.ownedBy(this.o.name) : []; }

  /** After the leave: strays (out of the store first, as for a donation) to the live member holding fewest. */
  handOn(blocks: number[]): boolean {
    const to = this.heir();
    if (!this.self.left || this.isRetired || !to || !blocks.length || !this.table.transfer(this.o.name, to, blocks)) return false;
    for (const i of blocks) this.handed.add(i);
    this.self.version++;
    return true;
  }

  /**
   * Whether a leaving node may stop: it owns nothing; the current owner of every block it handed on
   * has sent a table showing it took it; and every live member has sent our left record back. A member
   * gives nothing to a member it knows left, so once a member has sent that, any block it gave us before
   * is in what it sent, and was handed on. A member silent since we left for quietMs (a few gossip
   * intervals: every running member sends its state to every member that often) is down or cut off and
   * is not waited for.
   */
  leaveSettled(now: number, quietMs: number): boolean {
    if (!this.self.left) return false;
    if (this.isRetired) return true;
    if (this.strays().length) return false;
    for (const i of this.handed) {
      const owner = this.table.owners[i];
      if ((this.views.get(owner)?.owns.get(i) ?? 0) < this.table.versions[i]) return false;
    }
    const unacked = this.live().filter((m) => m.name !== this.o.name && (this.views.get(m.name)?.self ?? 0) < this.self.version);
    return !unacked.length || (now - this.leftAt >= quietMs && unacked.every((m) => (this.lastHeard.get(m.name) ?? -Infinity) < this.leftAt));
  }
}
