import type { Socket } from 'node:dgram';
import { formatCIDR, formatIP, parseIP } from '../../lib/ip/addr.js';
import { nodeDgram } from '../../lib/builtin.js';
import { createLogger, type Logger } from '../../lib/log.js';
import { Netlink } from '../../lib/netlink/handle.js';
import { FileKV } from '../../lib/store/file.js';
import { AgentEvents } from '../events.js';
import { detectUnderlay } from '../underlay.js';
import { open, readKeyFile, ReplayGuard, seal, Sequence } from './auth.js';
import { storeDir, type PeerAgentConfig } from './config.js';
import { takeReclaimRequest } from './control.js';
import { digest, PeerNode } from './peers.js';
import { loadSnapshot, saveSnapshot } from './persist.js';
import { BlockCutter, syncStore, takeOut } from './store-sync.js';
import { vtepMACOf } from './vxlan.js';

/** What `cnictl status` shows of a peer-mode agent (in its health file). */
export interface PeerStatusView {
  mode: 'peers';
  node: string;
  network: string;
  pool: string;
  address: string;
  port: number;
  /** Why the node cannot allocate yet, when it cannot. */
  waiting?: string;
  owned: number;
  free: number;
  /** Blocks still in the node's store that the table gives another node: closed, kept for their pods until DEL. */
  closed: number;
  clashes: number;
  /** Datagrams dropped since the start, by why (the same counts as tether_peer_messages_total). */
  dropped: Record<string, number>;
  peers: { name: string; address: string; state: 'live' | 'left' | 'retired'; lastContactMs: number | null; blocks: number; free: number; wants: number }[];
  table: { blocks: string; owner: string; version: number }[];
  reclaim?: { node: string; result: string; at: string };
}

/**
 * tetherd in peer mode: gossips this node's state over one UDP port to every member it knows (at once
 * after a change, and every gossipInterval), merges what it receives, and keeps the node's embedded
 * IPAM store holding exactly the blocks the node owns. Every change is saved before it is sent.
 */
export class PeerAgent {
  readonly events = new AgentEvents();
  private readonly log: Logger;
  private key!: Buffer;
  private peer!: PeerNode;
  private sock!: Socket;
  private readonly seq = new Sequence();
  private readonly guard: ReplayGuard;
  private readonly kv: FileKV;
  private readonly cut: BlockCutter;
  private address = '';
  private timers: NodeJS.Timeout[] = [];
  private busy = false;
  private dirty = false;
  private stopping = false;
  private lastWaiting = '';
  private lastFree = -1;
  private closedBlocks = 0;
  private reclaim?: PeerStatusView['reclaim'];
  private readonly listeners: (() => void)[] = [];
  /** Reasons already logged per sender, so a misconfigured neighbour fills no log. */
  private readonly warned = new Set<string>();

  constructor(private readonly c: PeerAgentConfig) {
    this.log = createLogger({ component: 'tetherd', file: c.logFile, level: c.logLevel });
    this.guard = new ReplayGuard(c.replayWindowMs);
    this.kv = new FileKV(storeDir(c));
    this.cut = new BlockCutter(c.pool, c.blockSize);
  }

  async start(): Promise<void> {
    this.key = readKeyFile(this.c.keyFile);
    this.address = this.c.underlayIP ? formatIP(this.c.underlayIP)
      : formatIP(Netlink.within('/proc/self/ns/net', (nl) => detectUnderlay(nl, { interface: this.c.underlayInterface })).address.ip);
    const saved = loadSnapshot(this.c.stateFile);
    const now = Date.now();
    this.peer = new PeerNode({
      name: this.c.nodeName, address: this.address, port: this.c.port, vtepMAC: this.c.vxlan ? vtepMACOf(this.c.nodeName, this.c.vxlan.vni) : '',
      config: digest([this.c.network, formatCIDR(this.c.pool), String(this.c.blockSize)]), blocks: this.cut.count,
      initialPeers: this.c.peers, seed: this.c.seed, voteSilenceMs: this.c.voteSilenceMs, reclaimAfterMs: this.c.reclaimAfterMs, lowWater: this.c.lowWater,
      reachableMs: Math.max(3 * this.c.gossipIntervalMs, 1500),
    }, now, saved);
    if (saved && this.peer.snapshot(now).config !== saved.config) this.log.warn('the saved state is of another pool or block size; ignored', { file: this.c.stateFile });
    this.log.info('peer mode', { node: this.c.nodeName, address: this.address, port: this.c.port, pool: formatCIDR(this.c.pool), blocks: this.cut.count, owned: this.peer.owned().length, restored: !!saved, store: this.kv.where });
    saveSnapshot(this.c.stateFile, this.peer.snapshot(now));
    this.sock = nodeDgram().createSocket({ type: parseIP(this.address)!.family === 6 ? 'udp6' : 'udp4' });
    this.sock.on('message', (b, from) => this.onDatagram(b, from));
    this.sock.on('error', (e) => { this.log.error('gossip socket error', { error: e.message }); this.events.emit({ kind: 'error', code: 'peer_socket' }); });
    await new Promise<void>((resolve, reject) => { this.sock.once('error', reject); this.sock.bind(this.c.port, this.address, () => { this.sock.off('error', reject); resolve(); }); });
    await this.step();
    this.broadcast();
    this.timers.push(setInterval(() => { void this.step(); }, this.c.syncIntervalMs));
    this.timers.push(setInterval(() => this.broadcast(), this.c.gossipIntervalMs));
  }

  stop(): void {
    this.stopping = true;
    for (const t of this.timers) clearInterval(t);
    try { this.sock?.close(); } catch { /* closed */ }
    this.log.info('stopped; the store keeps the blocks this node owns');
  }

  private readonly dropped: Record<string, number> = {};

  private drop(result: string, from: string, why: string): void {
    this.events.emit({ kind: 'peer-message', result });
    this.dropped[result] = (this.dropped[result] ?? 0) + 1;
    const k = `${result}/${from}`;
    if (!this.warned.has(k)) { this.warned.add(k); this.log.warn('dropped a gossip message', { result, from, why }); }
  }

  private onDatagram(b: Buffer, from: { address: string; port: number }): void {
    if (this.stopping) return;
    const now = Date.now();
    const o = open(b, this.key);
    if (!o.ok) { this.drop(o.drop, '?', o.why); return; }
    const f = o.frame;
    if (f.sender === this.c.nodeName) { this.drop('self', f.sender, 'a message with our own name (a node configured with the same nodeName?)'); return; }
    const g = this.guard.check(f, now);
    if (!g.ok) { this.drop(g.drop, f.sender, g.why); return; }
    const r = this.peer.receive(f.message, f.sender, now);
    if (r.rejected) { this.drop('other_network', f.sender, r.rejected); return; }
    this.events.emit({ kind: 'peer-message', result: 'accepted' });
    // Nobody gossips to a reclaimed node any more: one that is still (or again) running learns it was
    // reclaimed, and stops allocating from the blocks its heir now uses, from the answer to its own message.
    if (this.peer.retired.has(f.sender)) this.sendTo(new Map([[from.address, from.port]]));
    if (r.changed) { this.dirty = true; void this.step(); }
  }

  /** One pass: protocol decisions, the store, donations, then save and send what changed. */
  private async step(): Promise<void> {
    if (this.busy || this.stopping) { if (this.busy) this.dirty = this.dirty || false; return; }
    this.busy = true;
    try {
      const now = Date.now();
      const req = takeReclaimRequest(this.c.stateFile);
      if (req) {
        const problem = this.peer.proposeReclaim(req.node, now);
        this.reclaim = { node: req.node, result: problem ?? 'voting', at: new Date().toISOString() };
        this.log.info('reclaim requested', { node: req.node, result: this.reclaim.result });
        if (!problem) this.dirty = true;
      }
      const retiredBefore = this.peer.retired.size;
      if (this.peer.tick(now)) this.dirty = true;
      if (this.peer.retired.size !== retiredBefore) this.log.warn('nodes reclaimed', { retired: [...this.peer.retired], owned: this.peer.owned().length });
      if (this.reclaim?.result === 'voting' && this.peer.retired.has(this.reclaim.node)) this.reclaim.result = 'reclaimed';
      const waiting = this.peer.waiting ? 'back after a long absence: waiting to hear from a peer whether this node was reclaimed'
        : this.peer.isRetired ? 'this node was reclaimed by the others: it owns nothing (remove its state file to join as a new member under another name)'
          : this.peer.self.hasTable ? '' : this.peer.splitProblem() ?? '';
      if (waiting !== this.lastWaiting) { this.dirty = true; if (waiting) this.log.warn('not allocating', { why: waiting }); else this.log.info('allocating from owned blocks', { owned: this.peer.owned().length }); this.lastWaiting = waiting; }
      // Waiting or reclaimed, the store holds no block open and the hold key tells tether-ipam why; else
      // the agent's word lets tether-ipam allocate for half the vote silence, renewed while this runs.
      const report = await syncStore(this.kv, this.cut, this.c.nodeName, new Set(this.peer.waiting ? [] : this.peer.owned()), this.peer.waiting || this.peer.isRetired ? waiting : null, this.c.voteSilenceMs / 2);
      if (report.foreign.length) this.events.emit({ kind: 'error', code: 'peer_foreign_blocks' });
      this.closedBlocks = report.foreign.length;
      const cidrs = (xs: number[]) => xs.map((i) => formatCIDR(this.cut.cidr(i)));
      if (report.added.length || report.removed.length || report.closed.length || report.reopened.length) {
        this.log.info('store', { added: cidrs(report.added), removed: cidrs(report.removed), closed: cidrs(report.closed), reopened: cidrs(report.reopened), foreign: cidrs(report.foreign) });
      }
      if (!this.peer.waiting) {
        if (this.peer.setSupply(report.empty.length)) this.dirty = true;
        for (const d of this.peer.donations(report.empty, Date.now())) {
          const out = await takeOut(this.kv, this.cut, d.blocks);
          if (out.length && this.peer.give(d.to, out)) {
            this.dirty = true;
            this.log.info('gave blocks', { to: d.to, blocks: out.map((i) => formatCIDR(this.cut.cidr(i))) });
          }
        }
      }
      // Left, and the table still gives us blocks (a donation decided before the donor heard we left): on they go.
      const strays = this.peer.strays();
      if (strays.length) {
        const out = await takeOut(this.kv, this.cut, strays);
        if (out.length && this.peer.handOn(out)) {
          this.dirty = true;
          this.log.info('handed on blocks given to this node after it left', { to: this.peer.table.owners[out[0]], blocks: out.map((i) => formatCIDR(this.cut.cidr(i))) });
        }
      }
      if (this.lastFree !== report.empty.length) this.lastFree = report.empty.length;
      if (this.dirty) {
        this.dirty = false;
        saveSnapshot(this.c.stateFile, this.peer.snapshot(Date.now()));
        this.broadcast();
        for (const fn of this.listeners) { try { fn(); } catch (e) { this.log.error('a listener of the table failed', { error: (e as Error).message }); } }
      }
    } catch (e) {
      this.log.error('peer step failed', { error: (e as Error).message });
      this.events.emit({ kind: 'error', code: 'peer_step' });
    } finally { this.busy = false; }
  }

  /** Our state to every member we know and every configured address. */
  private broadcast(): void {
    if (this.stopping) return;
    const to = new Map<string, number>();
    for (const a of this.c.peers) to.set(a, this.c.port);
    // Left members too: one that is leaving waits to see its blocks taken before it exits.
    for (const m of this.peer.members.values()) if (!this.peer.retired.has(m.name)) to.set(m.address, m.port);
    to.delete(this.address);
    this.sendTo(to);
  }

  /** Our state, sealed now, to each address:port. */
  private sendTo(to: Map<string, number>): void {
    if (this.stopping) return;
    const now = Date.now();
    let bytes: Buffer;
    try { bytes = seal({ sender: this.c.nodeName, seq: this.seq.next(now), sentAt: now, message: this.peer.message() }, this.key); } catch (e) {
      this.log.error('cannot encode our state', { error: (e as Error).message });
      this.events.emit({ kind: 'error', code: 'peer_encode' });
      return;
    }
    for (const [addr, port] of to) this.sock.send(bytes, port, addr, (e) => { if (e) this.events.emit({ kind: 'error', code: 'peer_send' }); });
  }

  status(): PeerStatusView {
    const now = Date.now();
    const p = this.peer;
    const all = [p.self, ...p.members.values()];
    const counts = new Map<string, number>();
    for (const o of p.table.owners) counts.set(o, (counts.get(o) ?? 0) + 1);
    return {
      mode: 'peers', node: this.c.nodeName, network: this.c.network, pool: formatCIDR(this.c.pool), address: this.address, port: this.c.port,
      ...(this.lastWaiting ? { waiting: this.lastWaiting } : {}),
      owned: p.owned().length, free: p.self.free, closed: this.closedBlocks, clashes: p.clashes, dropped: { ...this.dropped },
      peers: all.map((m) => ({
        name: m.name, address: m.address, state: p.retired.has(m.name) ? 'retired' as const : m.left ? 'left' as const : 'live' as const,
        lastContactMs: m === p.self ? 0 : p.lastHeard.has(m.name) ? now - p.lastHeard.get(m.name)! : null, blocks: counts.get(m.name) ?? 0, free: m.free, wants: m.wants,
      })),
      table: p.table.runs().map((r) => ({ blocks: r.count === 1 ? formatCIDR(this.cut.cidr(r.start)) : `${formatCIDR(this.cut.cidr(r.start))} +${r.count - 1}`, owner: r.owner || '(nobody)', version: r.version })),
      ...(this.reclaim ? { reclaim: this.reclaim } : {}),
    };
  }

  /** Called after each change of the members or the table (saved and sent by then). */
  onChange(fn: () => void): void { this.listeners.push(fn); }

  /** The live members' VTEPs (VXLAN mode): their underlay address and device MAC, as each published it. */
  vteps(): { name: string; address: string; vtepMAC: string }[] {
    return this.peer.live().map((m) => ({ name: m.name, address: m.address, vtepMAC: m.vtepMAC }));
  }

  /** The agent's logger, for the mode running beside it. */
  get logger(): Logger { return this.log; }

  /** The live members' underlay addresses (the BGP mesh: one AS for the network). */
  liveMembers(asn: number): { name: string; address: string; asn: number }[] {
    return this.peer.live().map((m) => ({ name: m.name, address: m.address, asn }));
  }

  /**
   * Who owns which block, for announcements: this node's own only while it may allocate there (not
   * while it waits for word after a long absence), the others' as the table says.
   */
  ownedBlocks(): { cidr: ReturnType<BlockCutter['cidr']>; node: string }[] {
    const p = this.peer;
    const mine = new Set(p.allocatable());
    const out: { cidr: ReturnType<BlockCutter['cidr']>; node: string }[] = [];
    p.table.owners.forEach((o, i) => {
      if (!o || p.retired.has(o) || (o === this.c.nodeName && !mine.has(i))) return;
      out.push({ cidr: this.cut.cidr(i), node: o });
    });
    return out;
  }

  /** Counts for /metrics. */
  gauges(): { members: Record<string, number>; blocks: Record<string, number> } {
    const p = this.peer;
    const now = Date.now();
    const others = [...p.members.values()];
    return {
      members: {
        live: p.live().length, left: others.filter((m) => m.left).length, retired: p.retired.size,
        reachable: others.filter((m) => !m.left && !p.retired.has(m.name) && p.lastHeard.has(m.name) && now - p.lastHeard.get(m.name)! < this.c.voteSilenceMs).length,
      },
      blocks: { owned: p.owned().length, free: p.self.free, closed: this.closedBlocks, pool: this.cut.count },
    };
  }

  /**
   * `tetherd leave` (the agent stopped): refused while pods hold addresses here; else every block goes
   * to the live member holding fewest, the store is emptied, and the news is sent until it is settled
   * (PeerNode.leaveSettled: every live member knows we left, every block we handed on was taken, and
   * any block given to us before a donor heard of the leave was handed on too), or the deadline passes:
   * then what is not confirmed spreads when the others next hear this node's state.
   */
  async leave(deadlineMs: number): Promise<{ to?: string; blocks: number; confirmed: boolean; problem?: string }> {
    await this.startQuiet();
    const report = await syncStore(this.kv, this.cut, this.c.nodeName, new Set(this.peer.owned()), null, this.c.voteSilenceMs / 2);
    const owned = this.peer.owned();
    const busy = owned.filter((i) => !report.empty.includes(i));
    if (busy.length) { this.stop(); return { blocks: 0, confirmed: false, problem: `pods still hold addresses in ${busy.length} of this node's blocks (${busy.slice(0, 3).map((i) => formatCIDR(this.cut.cidr(i))).join(', ')}${busy.length > 3 ? ', ...' : ''}): remove them first` }; }
    const out = await takeOut(this.kv, this.cut, owned);
    if (out.length !== owned.length) { this.stop(); return { blocks: 0, confirmed: false, problem: 'an address was allocated while leaving; try again' }; }
    const problem = this.peer.leave(Date.now());
    if (problem) { this.stop(); return { blocks: 0, confirmed: false, problem }; }
    const to = owned.length ? this.peer.table.owners[owned[0]] : undefined;
    saveSnapshot(this.c.stateFile, this.peer.snapshot(Date.now()));
    // Every running member sends its state to every member each gossip interval: silent for a few, it is not running.
    const quietMs = 3 * this.c.gossipIntervalMs;
    let confirmed = false;
    for (const until = Date.now() + deadlineMs; !confirmed && Date.now() < until; await new Promise((r) => setTimeout(r, 100))) {
      this.broadcast();
      await this.step();
      confirmed = this.peer.leaveSettled(Date.now(), quietMs);
    }
    this.stop();
    return { to, blocks: owned.length, confirmed };
  }

  /** The socket and state without the timers (for leave). */
  private async startQuiet(): Promise<void> {
    await this.start();
    for (const t of this.timers) clearInterval(t);
    this.timers = [];
  }
}
