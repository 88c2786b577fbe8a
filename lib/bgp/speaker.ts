import { EventEmitter } from 'node:events';
import { formatCIDR, formatIP, networkCIDR, parseCIDR, parseIP, type CIDR, type Family, type IP } from '../ip/addr.js';
import { createLogger, type Logger } from '../log.js';
import * as C from './constants.js';
import { notification } from './codec.js';
import { systemClock, type Clock, type State } from './fsm.js';
import type { RouteSink } from './kernel.js';
import { Rib, type Path } from './rib.js';
import { PeerSession, type PeerConfig, type PeerStatus, type SessionContext } from './session.js';
import { tcpTransport, type Connection, type Listener, type Transport } from './transport.js';

// The speaker tetherd hosts: the configured peers, our local prefixes, the RIB, and the kernel sink
// that learned best paths and owned blocks end up in.

export interface SpeakerConfig {
  asn: number;
  routerId: string;
  /** Addresses to accept connections on (port 179 unless given); none: only connect out. */
  listen?: { address: string; port?: number }[];
  peers: PeerConfig[];
  /** Next hops to announce in a family the session's own address is not of. */
  nextHops?: { v4?: string; v6?: string };
  /** The restart time we advertise in the graceful restart capability (seconds). */
  restartTime?: number;
  /** Our routes' forwarding state outlives the speaker: peers keep them over our restart (session.ts). */
  keepsForwarding?: boolean;
  transport?: Transport;
  clock?: Clock;
  sink?: RouteSink;
  log?: Logger;
}

export interface AnnounceOptions {
  /** Install a blackhole for the prefix: it is a block this node owns (default true; false for a borrowed /32). */
  blackhole?: boolean;
}

export interface RouteEntry {
  prefix: string;
  nextHop: string;
  peer: string;
  best: boolean;
  stale: boolean;
  origin?: number;
  asPath: number[];
  localPref?: number;
  med?: number;
  communities?: string[];
}

/** One FSM state change of a peer's connection (the speaker's 'transition' event). */
export interface SessionTransition { peer: string; from: State; to: State }

export interface RibSnapshot {
  local: { prefix: string; blackhole: boolean }[];
  learned: RouteEntry[];
}

function must<T>(v: T | null, what: string): T {
  if (v === null) throw new Error(`invalid ${what}`);
  return v;
}

export class Speaker extends EventEmitter {
  private readonly sessions = new Map<string, PeerSession>();
  private readonly local = new Map<string, { prefix: CIDR; blackhole: boolean }>();
  private readonly servers: Listener[] = [];
  private readonly ctx: SessionContext;
  readonly rib: Rib;
  private readonly log: Logger;
  private readonly sink?: RouteSink;
  private running = false;
  private changeQueued = false;

  constructor(private readonly config: SpeakerConfig) {
    super();
    must(parseIP(config.routerId)?.family === 4 ? config.routerId : null, `router id ${config.routerId}`);
    this.log = config.log ?? createLogger({ component: 'bgp' });
    this.sink = config.sink;
    this.rib = new Rib((prefix, best, prev) => this.bestChanged(prefix, best, prev));
    const nh = (s: string | undefined) => (s ? must(parseIP(s), `next hop ${s}`) : undefined);
    const nextHops: Partial<Record<Family, IP>> = { 4: nh(config.nextHops?.v4), 6: nh(config.nextHops?.v6) };
    this.ctx = {
      asn: config.asn, routerId: config.routerId, clock: config.clock ?? systemClock,
      transport: config.transport ?? tcpTransport, rib: this.rib, log: this.log,
      restartTime: config.restartTime ?? 120,
      keepsForwarding: config.keepsForwarding,
      localPrefixes: () => [...this.local.values()].map((l) => l.prefix),
      nextHop: (f) => nextHops[f],
      changed: () => this.queueChange(),
      transition: (peer, from, to) => this.emit('transition', { peer, from, to } satisfies SessionTransition),
    };
    for (const p of config.peers) this.addPeer(p);
  }

  private queueChange(): void {
    if (this.changeQueued) return;
    this.changeQueued = true;
    queueMicrotask(() => { this.changeQueued = false; this.emit('change'); });
  }

  /** Kernel side of a best-path change. Our own prefixes are never overridden by a learned route. */
  private bestChanged(prefix: CIDR, best: Path | null, prev: Path | null): void {
    this.emit('route', { prefix: formatCIDR(prefix), best, previous: prev });
    if (!this.sink || this.local.has(formatCIDR(prefix))) return;
    try {
      if (best) this.sink.install(prefix, best.nextHop);
      else this.sink.remove(prefix);
    } catch (e) {
      this.log.error(`kernel route ${formatCIDR(prefix)}: ${(e as Error).message}`);
    }
  }

  private addPeer(p: PeerConfig): void {
    must(parseIP(p.address), `peer address ${p.address}`);
    if (this.sessions.has(p.address)) throw new Error(`peer ${p.address} is configured twice`);
    const s = new PeerSession(p, this.ctx);
    this.sessions.set(p.address, s);
    if (this.running) s.start();
  }

  async start(): Promise<void> {
    if (this.running) return;
    this.running = true;
    const ttl255 = [...this.sessions.values()].some((s) => s.config.ttlSecurity);
    for (const l of this.config.listen ?? []) {
      this.servers.push(await this.ctx.transport.listen({ host: l.address, port: l.port ?? C.BGP_PORT, ttl255 }, (c) => this.incoming(c)));
    }
    for (const s of this.sessions.values()) s.start();
  }

  /** Only configured peers may connect; anyone else is hung up on at once. */
  private incoming(c: Connection): void {
    const s = this.sessions.get(c.remoteAddress);
    if (!s) {
      this.log.warn(`refused a BGP connection from ${c.remoteAddress}: not a configured peer`);
      c.close();
      return;
    }
    s.accept(c);
  }

  /** Ends every session (Cease/2) and closes the listeners. Learned routes are removed from the sink. */
  stop(): void {
    this.running = false;
    for (const l of this.servers.splice(0)) l.close();
    for (const s of this.sessions.values()) s.stop();
  }

  private parsePrefix(prefix: string | CIDR): CIDR {
    const c = typeof prefix === 'string' ? must(parseCIDR(prefix), `prefix ${prefix}`) : prefix;
    return networkCIDR(c);
  }

  /** Announces a local prefix to every peer. */
  announce(prefix: string | CIDR, o: AnnounceOptions = {}): void {
    const c = this.parsePrefix(prefix);
    const key = formatCIDR(c);
    const blackhole = o.blackhole ?? true;
    const had = this.local.get(key);
    this.local.set(key, { prefix: c, blackhole });
    if (this.sink && blackhole !== (had?.blackhole ?? false)) {
      try {
        if (!had && this.rib.bestFor(c)) this.sink.remove(c); // a learned route for our own block gives way
        this.sink.blackhole(c, blackhole);
      } catch (e) {
        this.log.error(`blackhole ${key}: ${(e as Error).message}`);
      }
    }
    if (!had) for (const s of this.sessions.values()) s.announce([c]);
    this.queueChange();
  }

  withdraw(prefix: string | CIDR): void {
    const c = this.parsePrefix(prefix);
    const key = formatCIDR(c);
    const had = this.local.get(key);
    if (!had) return;
    this.local.delete(key);
    if (this.sink) {
      try {
        if (had.blackhole) this.sink.blackhole(c, false);
        const best = this.rib.bestFor(c);
        if (best) this.sink.install(c, best.nextHop);
      } catch (e) {
        this.log.error(`withdraw ${key}: ${(e as Error).message}`);
      }
    }
    for (const s of this.sessions.values()) s.withdraw([c]);
    this.queueChange();
  }

  /** Replaces the peer set (the topology from the store): new peers start, removed ones get Cease/3, changed ones restart with Cease/6. */
  setPeers(peers: PeerConfig[]): void {
    const next = new Map(peers.map((p) => [p.address, p]));
    for (const [addr, s] of this.sessions) {
      const p = next.get(addr);
      if (p && JSON.stringify(p) === JSON.stringify(s.config)) continue;
      s.stop(notification(C.ERR_CEASE, p ? 6 : C.CEASE_PEER_DECONFIGURED));
      this.sessions.delete(addr);
    }
    for (const p of peers) if (!this.sessions.has(p.address)) this.addPeer(p);
    this.queueChange();
  }

  peers(): PeerStatus[] { return [...this.sessions.values()].map((s) => s.status()); }

  routes(): RibSnapshot {
    const learned: RouteEntry[] = [];
    for (const s of this.sessions.values()) {
      for (const p of this.rib.paths(s.address)) {
        const a = p.attributes;
        const e: RouteEntry = {
          prefix: formatCIDR(p.prefix), nextHop: formatIP(p.nextHop), peer: p.peer, best: this.rib.bestFor(p.prefix) === p,
          stale: p.stale, origin: a.origin, asPath: (a.asPath ?? []).flatMap((x) => x.asns),
        };
        if (a.localPref !== undefined) e.localPref = a.localPref;
        if (a.med !== undefined) e.med = a.med;
        if (a.communities) e.communities = a.communities.map((c) => `${c >>> 16}:${c & 0xffff}`);
        learned.push(e);
      }
    }
    learned.sort((x, y) => (x.prefix < y.prefix ? -1 : x.prefix > y.prefix ? 1 : x.peer < y.peer ? -1 : 1));
    return { local: [...this.local.values()].map((l) => ({ prefix: formatCIDR(l.prefix), blackhole: l.blackhole })), learned };
  }
}
