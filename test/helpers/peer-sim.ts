import { open, ReplayGuard, seal, Sequence } from '../../tetherd/peers/auth.js';
import { digest, PeerNode, type PeerOptions, type Snapshot } from '../../tetherd/peers/peers.js';

/**
 * A simulated network of peer-mode agents: every message goes through the real codec and MAC, with
 * loss, duplication, reordering and partitions; each node keeps a model of its embedded store (the
 * blocks it wrote there, with addresses used, and which of them are closed) and behaves as the agent
 * (tetherd/peers/store-sync.ts) and tether-ipam do: a block enters the store when the node owns it, and
 * leaves it (empty only) before the node gives it away; a block the table no longer gives the node
 * (reclaimed by an heir) stays while addresses are held there, closed: nothing new is allocated in it.
 */
export const KEY = Buffer.from('0123456789abcdef0123456789abcdef');
export const BLOCK_SIZE = 8;

export interface SimNode {
  name: string;
  peer: PeerNode;
  seq: Sequence;
  guard: ReplayGuard;
  /** block -> addresses in use: the model of the node's embedded store. */
  store: Map<number, number>;
  /** Blocks in the store that give no new address (the record's "closed"). */
  closed: Set<number>;
  down: boolean;
}

interface InFlight { to: string; at: number; bytes: Buffer }

export class PeerSim {
  readonly nodes = new Map<string, SimNode>();
  now = 1_700_000_000_000;
  private flight: InFlight[] = [];
  /** Group of each node; messages between groups are dropped. */
  group = new Map<string, number>();
  loss = 0;
  dup = 0;
  /** Most blocks two nodes' stores ever held at once, over the whole run (must stay 0). */
  doubleHeld = 0;
  readonly options: Omit<PeerOptions, 'name' | 'address' | 'port' | 'vtepMAC' | 'initialPeers' | 'seed'>;

  constructor(readonly r: () => number, readonly blocks: number, o: Partial<PeerOptions> = {}) {
    this.options = { config: digest(['sim', String(blocks)]), blocks, voteSilenceMs: 5_000, reclaimAfterMs: 0, reachableMs: 500, lowWater: 2, ...o };
  }

  add(name: string, o: { initialPeers?: string[]; seed?: boolean; saved?: Snapshot } = {}): SimNode {
    const initialPeers = (o.initialPeers ?? []).map((p) => this.address(p));
    const peer = new PeerNode({ ...this.options, name, address: this.address(name), port: 6784, vtepMAC: '', initialPeers, seed: o.seed ?? false }, this.now, o.saved);
    const n: SimNode = { name, peer, seq: new Sequence(), guard: new ReplayGuard(30_000), store: new Map(), closed: new Set(), down: false };
    this.nodes.set(name, n);
    this.group.set(name, 0);
    return n;
  }

  /** Underlay address of each node name (names are assigned addresses in the order they are added). */
  private readonly addresses = new Map<string, string>();
  address(name: string): string {
    if (!this.addresses.has(name)) this.addresses.set(name, `198.18.${this.addresses.size >> 8}.${(this.addresses.size & 255) + 1}`);
    return this.addresses.get(name)!;
  }
  private byAddress(a: string): SimNode | undefined { for (const [n, x] of this.addresses) if (x === a) return this.nodes.get(n); return undefined; }

  /** Sends a node's state to the addresses it knows (configured, or learned), as the agent does. */
  gossip(n: SimNode, extra: string[] = []): void {
    if (n.down) return;
    const bytes = seal({ sender: n.name, seq: n.seq.next(this.now), sentAt: this.now, message: n.peer.message() }, KEY);
    const to = new Set([...extra.map((x) => this.address(x)), ...[...n.peer.members.values()].map((m) => m.address)]);
    for (const t of to) {
      if (t === this.address(n.name)) continue;
      if (this.r() < this.loss) continue;
      const copies = this.r() < this.dup ? 2 : 1;
      for (let c = 0; c < copies; c++) this.flight.push({ to: t, at: this.now + 1 + Math.floor(this.r() * 40), bytes });
    }
  }

  private deliver(f: InFlight): void {
    const n = this.byAddress(f.to);
    if (!n || n.down) return;
    const o = open(f.bytes, KEY);
    if (!o.ok) throw new Error(`sim: a message of ours did not open: ${o.why}`);
    const from = o.frame.sender;
    if (this.group.get(from) !== this.group.get(n.name)) return;
    if (!n.guard.check(o.frame, this.now).ok) return; // duplicates and reordered copies end here
    n.peer.receive(o.frame.message, from, this.now);
  }

  /**
   * The agent's store sync (syncStore): owned blocks enter the store, open; others leave it when empty
   * and are closed while addresses are held there. Waiting for word after a long absence the agent
   * syncs as if it owned nothing, as it does.
   */
  syncStore(n: SimNode): void {
    const owned = new Set(n.peer.waiting ? [] : n.peer.owned());
    for (const b of owned) { if (!n.store.has(b)) n.store.set(b, 0); n.closed.delete(b); }
    for (const [b, used] of n.store) {
      if (owned.has(b)) continue;
      if (used === 0) { n.store.delete(b); n.closed.delete(b); } else n.closed.add(b);
    }
    if (!n.peer.waiting) n.peer.setSupply(this.emptyOwned(n).length);
  }

  emptyOwned(n: SimNode): number[] { return [...n.store].filter(([b, u]) => u === 0 && !n.closed.has(b)).map(([b]) => b); }

  donate(n: SimNode): void {
    if (n.peer.waiting) return;
    for (const d of n.peer.donations(this.emptyOwned(n), this.now)) {
      for (const b of d.blocks) n.store.delete(b); // out of the store first (the agent: a conditional delete of an empty block)
      if (!n.peer.give(d.to, d.blocks)) throw new Error('sim: a planned donation was refused');
    }
  }

  /** tether-ipam: the first open block of the store with room (nothing else: no hold key is modelled, the store alone decides). */
  allocate(n: SimNode): boolean {
    for (const [b, used] of n.store) if (used < BLOCK_SIZE && !n.closed.has(b)) { n.store.set(b, used + 1); return true; }
    return false;
  }

  release(n: SimNode): void {
    const held = [...n.store].filter(([, u]) => u > 0);
    if (!held.length) return;
    const [b, u] = held[Math.floor(this.r() * held.length)];
    n.store.set(b, u - 1);
  }

  /**
   * Blocks open in two running nodes' stores at once: tether-ipam allocates from whatever open block its
   * node's store holds, so this is a duplicate address waiting to happen. A node that is down allocates
   * nothing; every other node counts, waiting or reclaimed ones too (their stores must hold nothing open).
   */
  checkNoDouble(): number {
    const holder = new Map<number, string>();
    let doubles = 0;
    for (const n of this.nodes.values()) {
      if (n.down) continue;
      for (const b of n.store.keys()) { if (n.closed.has(b)) continue; if (holder.has(b)) doubles++; else holder.set(b, n.name); }
    }
    this.doubleHeld = Math.max(this.doubleHeld, doubles);
    return doubles;
  }

  /** Advances the clock by ms in 10 ms steps: deliveries, each node's tick, store sync, donations, gossip every 100 ms. */
  run(ms: number, work: (n: SimNode) => void = () => {}): void {
    const end = this.now + ms;
    while (this.now < end) {
      this.now += 10;
      const due = this.flight.filter((f) => f.at <= this.now);
      this.flight = this.flight.filter((f) => f.at > this.now);
      for (let i = due.length - 1; i > 0; i--) { const j = Math.floor(this.r() * (i + 1)); [due[i], due[j]] = [due[j], due[i]]; }
      for (const f of due) this.deliver(f);
      for (const n of this.nodes.values()) {
        if (n.down) continue;
        n.peer.tick(this.now);
        this.syncStore(n);
        work(n);
        this.donate(n);
        this.syncStore(n);
        if (this.now % 100 === 0) this.gossip(n, this.seeds(n));
      }
      this.checkNoDouble();
    }
  }

  /** Addresses a node is configured with (its initial peers), beside the ones it learned. */
  seeds(n: SimNode): string[] { return this.seedsOf.get(n.name) ?? []; }
  readonly seedsOf = new Map<string, string[]>();

  /** Every live node holds the same table, retired set and member versions. */
  converged(): boolean {
    const live = [...this.nodes.values()].filter((n) => !n.down && !n.peer.isRetired);
    const [a, ...rest] = live;
    return rest.every((b) => b.peer.table.equals(a.peer.table) && [...b.peer.retired].sort().join() === [...a.peer.retired].sort().join()
      && live.every((m) => (m === b ? m.peer.self.version : b.peer.members.get(m.name)?.version) === (m === a ? m.peer.self.version : a.peer.members.get(m.name)?.version)));
  }
}
