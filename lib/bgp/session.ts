import { formatCIDR, parseIP, type CIDR, type Family, type IP } from '../ip/addr.js';
import type { Logger } from '../log.js';
import * as C from './constants.js';
import { afiOf, decodeMessage, encodeMessage, endOfRib, endOfRibMessage, missingMandatory, notification } from './codec.js';
import { Framer } from './framer.js';
import { collisionKeeps, Fsm, type Clock, type DownReason, type Negotiated, type State } from './fsm.js';
import { BgpError, emptyAttributes, emptyCapabilities, type Capabilities, type NotificationMessage, type OpenMessage, type UpdateMessage } from './messages.js';
import type { Path, Rib } from './rib.js';
import type { Connection, Transport } from './transport.js';

// One configured peer: its FSM(s) bound to connections, what it sent us (into the RIB), what we send
// it (our local prefixes), graceful restart as a helper, and its max-prefix limit.

export interface PeerConfig {
  address: string;
  asn: number;
  /** Never connect out; wait for the peer (the mesh makes one side of each pair passive). */
  passive?: boolean;
  port?: number;
  /** Source address for the outgoing connection (and the next hop we announce). */
  localAddress?: string;
  holdTime?: number;
  connectRetryTime?: number;
  /** Seconds in Idle after a session error before trying again. */
  idleHoldTime?: number;
  /** Advertise the graceful restart capability and act as a helper (default true). */
  gracefulRestart?: boolean;
  /** Ends the session with Cease/1 when the peer announces more prefixes than this. */
  maxPrefix?: number;
  /** Seconds before trying a peer again that exceeded maxPrefix (default 60). */
  maxPrefixRestartTime?: number;
  /** Families to carry (default both). */
  families?: Family[];
  /** GTSM (RFC 5082): TTL 255 out, at least 254 in; the peer must be directly connected and do the same. */
  ttlSecurity?: boolean;
}

/** What every session shares: the speaker's identity, clock, transport, RIB and local prefixes. */
export interface SessionContext {
  asn: number;
  routerId: string;
  clock: Clock;
  transport: Transport;
  rib: Rib;
  log: Logger;
  /** Seconds we ask peers to keep our routes when we restart (the GR capability's restart time). */
  restartTime: number;
  /**
   * Our forwarding state outlives the speaker (tetherd leaves its kernel routes in place when it stops):
   * the GR capability then lists our families with the F bit and the N bit (RFC 8538), so a peer keeps
   * our routes over our restart, even one announced with a Cease, until our End-of-RIB.
   */
  keepsForwarding?: boolean;
  localPrefixes(): CIDR[];
  nextHop(family: Family): IP | undefined;
  changed(): void;
  /** An FSM of this peer's (any of its connections) moved from one state to another. */
  transition?(peer: string, from: State, to: State): void;
}

export interface PeerStatus {
  address: string;
  asn: number;
  state: State;
  /** Seconds since Established, else undefined. */
  uptime?: number;
  routerId?: string;
  prefixesIn: number;
  prefixesOut: number;
  families: string[];
  /** The last reason the session went down. */
  lastError?: string;
  gracefulRestart?: { stale: number; until: number };
}

const DEFAULTS = { holdTime: 90, connectRetryTime: 5, idleHoldTime: 5 };
const V4_CHUNK = 400; // <= 5 bytes each: an UPDATE stays well under 4096 bytes
const V6_CHUNK = 180; // <= 17 bytes each

function familyOf(afi: number): Family | null { return afi === C.AFI_IPV4 ? 4 : afi === C.AFI_IPV6 ? 6 : null; }

export function describeNotification(n: NotificationMessage): string {
  return `NOTIFICATION ${n.code}/${n.subcode}${n.data.length ? ` data ${Buffer.from(n.data).toString('hex')}` : ''}`;
}

function describeDown(r: DownReason): string {
  switch (r.kind) {
    case 'notification-sent': return `sent ${describeNotification(r.notification)}`;
    case 'notification-received': return `received ${describeNotification(r.notification)}`;
    case 'stopped': return 'stopped';
    case 'tcp-closed': return 'connection closed';
    case 'tcp-failed': return 'connection failed';
  }
}

function chunks<T>(xs: T[], n: number): T[][] {
  const out: T[][] = [];
  for (let i = 0; i < xs.length; i += n) out.push(xs.slice(i, i + n));
  return out;
}

/** An FSM with the connection it runs on. */
class Binding {
  readonly fsm: Fsm;
  conn?: Connection;
  private framer = new Framer();
  private cancel?: () => void;

  constructor(private readonly s: PeerSession, passive: boolean) {
    const cfg = s.config;
    this.fsm = new Fsm({
      localAsn: s.ctx.asn, routerId: s.ctx.routerId, peerAsn: cfg.asn, holdTime: cfg.holdTime ?? DEFAULTS.holdTime,
      connectRetryTime: cfg.connectRetryTime ?? DEFAULTS.connectRetryTime, passive, capabilities: s.capabilities(),
    }, {
      send: (m) => this.conn?.write(encodeMessage(m, { as4: this.fsm.negotiated?.as4 ?? true })),
      connect: () => this.connect(),
      disconnect: () => this.disconnect(),
      openReceived: (open) => s.resolveCollision(this, open),
      established: (n) => s.onEstablished(this, n),
      update: (u, why) => s.onUpdate(u, why),
      routeRefresh: (afi) => s.resend(familyOf(afi)),
      down: (reason, was) => s.onDown(this, reason, was),
      stateChanged: (from, to) => { s.ctx.transition?.(cfg.address, from, to); s.ctx.changed(); },
    }, s.ctx.clock);
  }

  private connect(): void {
    this.disconnect();
    const cfg = this.s.config;
    this.cancel = this.s.ctx.transport.connect({ host: cfg.address, port: cfg.port ?? C.BGP_PORT, localAddress: cfg.localAddress }, (err, c) => {
      this.cancel = undefined;
      if (err || !c || !this.attach(c)) return this.fsm.handle({ type: 'tcp-failed' });
      this.fsm.handle({ type: 'tcp-connected' });
    });
  }

  private disconnect(): void {
    this.cancel?.();
    this.cancel = undefined;
    const c = this.conn;
    this.conn = undefined;
    c?.close();
  }

  /** Binds the connection to this FSM; false (and the connection closed) if it cannot be secured as configured. */
  attach(c: Connection): boolean {
    if (this.s.config.ttlSecurity) {
      try {
        if (!c.ttlSecurity) throw new Error('the transport has no TTL control');
        c.ttlSecurity();
      } catch (e) {
        // Refuse rather than run a session without the protection that was asked for.
        this.s.ctx.log.error(`peer ${this.s.config.address}: TTL security: ${(e as Error).message}`);
        c.close();
        return false;
      }
    }
    // One connection per FSM: binding this one ends any attempt or connection it still held.
    this.cancel?.();
    this.cancel = undefined;
    if (this.conn && this.conn !== c) this.conn.close();
    this.conn = c;
    this.framer = new Framer();
    c.onData((d) => {
      try {
        for (const raw of this.framer.push(d)) {
          if (this.conn !== c) return; // an earlier message ended the session
          const { message, treatAsWithdraw } = decodeMessage(raw, { as4: this.fsm.negotiated?.as4 ?? true });
          this.fsm.handle({ type: 'message', message, treatAsWithdraw });
        }
      } catch (e) {
        if (!(e instanceof BgpError)) throw e;
        this.s.ctx.log.warn(`peer ${this.s.config.address}: ${e.message}`);
        if (this.conn === c) this.fsm.handle({ type: 'protocol-error', error: e });
      }
    });
    c.onClose(() => {
      if (this.conn !== c) return;
      this.conn = undefined;
      this.fsm.handle({ type: 'tcp-closed' });
    });
    return true;
  }
}

export class PeerSession {
  private primary: Binding;
  private secondary?: Binding;
  private stopped = true;
  private restartTimer?: unknown;
  private grTimer?: unknown;
  private grUntil = 0;
  private established?: { binding: Binding; since: number; negotiated: Negotiated; local: string };
  private exported = new Set<string>();
  private lastError?: string;
  /** After a max-prefix violation, no session before this time. */
  private holdDownUntil = 0;

  constructor(readonly config: PeerConfig, readonly ctx: SessionContext) {
    this.primary = new Binding(this, !!config.passive);
  }

  get address(): string { return this.config.address; }

  capabilities(): Capabilities {
    const c = emptyCapabilities();
    const fams = this.config.families ?? [4, 6];
    c.multiprotocol = fams.map((f) => ({ afi: afiOf(f), safi: C.SAFI_UNICAST }));
    c.routeRefresh = true;
    c.as4 = this.ctx.asn;
    // Helper only unless our forwarding state survives us: then our families with the F bit, and the N bit.
    if (this.config.gracefulRestart !== false) {
      const keep = this.ctx.keepsForwarding === true;
      c.gracefulRestart = { restarting: false, notification: keep, time: this.ctx.restartTime, families: keep ? c.multiprotocol.map((f) => ({ ...f, forwarding: true })) : [] };
    }
    return c;
  }

  start(): void {
    this.stopped = false;
    this.primary.fsm.handle({ type: 'start' });
  }

  /** Ends the session for good (peer removed, speaker stopping); its routes go at once. */
  stop(n: NotificationMessage = notification(C.ERR_CEASE, C.CEASE_ADMIN_SHUTDOWN)): void {
    this.stopped = true;
    this.clearTimer('restartTimer');
    this.clearTimer('grTimer');
    this.secondary?.fsm.handle({ type: 'stop', notification: n });
    this.primary.fsm.handle({ type: 'stop', notification: n });
    this.ctx.rib.dropPeer(this.address);
    this.ctx.changed();
  }

  private clearTimer(name: 'restartTimer' | 'grTimer'): void {
    if (this[name] !== undefined) this.ctx.clock.clearTimeout(this[name]);
    this[name] = undefined;
  }

  /** An incoming connection from this peer's address. */
  accept(c: Connection): void {
    if (this.primary.fsm.state === 'Idle' && !this.stopped && this.config.passive && this.ctx.clock.now() >= this.holdDownUntil) {
      // A passive peer's idle hold protects nobody: we would only wait for it to connect anyway.
      this.clearTimer('restartTimer');
      this.primary = new Binding(this, true);
      this.primary.fsm.handle({ type: 'start' });
    }
    const st = this.primary.fsm.state;
    if (this.stopped || st === 'Idle' || st === 'Established' || this.secondary) {
      // Idle refuses connections (RFC 4271 8.2.2); an established session keeps its connection.
      c.close();
      return;
    }
    if (st === 'Active') {
      if (this.primary.attach(c)) this.primary.fsm.handle({ type: 'tcp-accepted' });
      return;
    }
    // Connect / OpenSent / OpenConfirm: our own connection is on its way too. Run the second one up to
    // the peer's OPEN, then keep one of them by BGP identifier (RFC 4271 6.8). Dropping either side's
    // attempt early instead lets both speakers drop each other's connection at once.
    const b = new Binding(this, true);
    if (!b.attach(c)) return;
    this.secondary = b;
    b.fsm.handle({ type: 'start' });
    b.fsm.handle({ type: 'tcp-accepted' });
  }

  resolveCollision(b: Binding, open: OpenMessage): boolean {
    const other = b === this.primary ? this.secondary : this.primary;
    if (!other) return true;
    const st = other.fsm.state;
    if (st === 'Established') return false;
    if (st !== 'OpenSent' && st !== 'OpenConfirm') return true;
    const keep = collisionKeeps(this.ctx.routerId, open.routerId);
    this.ctx.log.info(`peer ${this.address}: connection collision, keeping the ${keep === 'out' ? 'outgoing' : 'incoming'} one`);
    if (b.fsm.direction === keep) {
      other.fsm.collisionLost();
      return true;
    }
    return false;
  }

  onDown(b: Binding, reason: DownReason, wasEstablished: boolean): void {
    if (reason.kind !== 'tcp-failed') this.lastError = describeDown(reason);
    if (b === this.secondary) {
      this.secondary = undefined;
    } else if (b === this.primary && this.secondary && b.fsm.state === 'Idle') {
      this.primary = this.secondary;
      this.secondary = undefined;
    }
    if (wasEstablished && this.established?.binding === b) this.sessionLost(reason);
    if (reason.kind !== 'tcp-failed') this.ctx.log.info(`peer ${this.address}: down: ${this.lastError}`);
    if (!this.stopped && this.primary === b && b.fsm.state === 'Idle') this.scheduleRestart();
    this.ctx.changed();
  }

  private scheduleRestart(seconds = this.config.idleHoldTime ?? DEFAULTS.idleHoldTime): void {
    this.clearTimer('restartTimer');
    this.restartTimer = this.ctx.clock.setTimeout(() => {
      this.restartTimer = undefined;
      if (this.stopped || this.primary.fsm.state !== 'Idle' || this.secondary) return;
      // A fresh FSM as configured: the one that ended may have been an accepted (passive) second connection.
      this.primary = new Binding(this, !!this.config.passive);
      this.primary.fsm.handle({ type: 'start' });
    }, seconds * 1000);
  }

  /** The session left Established: keep the peer's routes as stale (graceful restart) or drop them. */
  private sessionLost(reason: DownReason): void {
    const peerGr = this.established!.negotiated.peerOpen.capabilities.gracefulRestart;
    this.established = undefined;
    this.exported.clear();
    // RFC 4724 4.2: the helper keeps routes when the session ends without a NOTIFICATION (or, with the
    // N bit, with one other than Hard Reset). An administrative stop is never a restart.
    const notified = reason.kind === 'notification-sent' || reason.kind === 'notification-received' || reason.kind === 'stopped';
    const hardReset = notified && reason.notification?.code === C.ERR_CEASE && reason.notification.subcode === 9;
    const graceful = this.config.gracefulRestart !== false && peerGr && peerGr.time > 0 && reason.kind !== 'stopped'
      && (!notified || (peerGr.notification && !hardReset));
    if (!graceful) {
      this.ctx.rib.dropPeer(this.address);
      this.clearTimer('grTimer');
      return;
    }
    const families = peerGr.families.map((f) => familyOf(f.afi)).filter((f): f is Family => f !== null);
    // Families the peer did not list in its GR capability are not preserved.
    for (const f of [4, 6] as Family[]) if (!families.includes(f)) this.ctx.rib.dropPeer(this.address, f);
    const n = this.ctx.rib.markStale(this.address, families);
    this.ctx.log.info(`peer ${this.address}: graceful restart, keeping ${n} routes for up to ${peerGr.time} s`);
    this.clearTimer('grTimer');
    this.grUntil = this.ctx.clock.now() + peerGr.time * 1000;
    this.grTimer = this.ctx.clock.setTimeout(() => {
      this.grTimer = undefined;
      const gone = this.ctx.rib.dropPeer(this.address, undefined, true);
      this.ctx.log.info(`peer ${this.address}: restart time over, ${gone} stale routes removed`);
      this.ctx.changed();
    }, peerGr.time * 1000);
  }

  onEstablished(b: Binding, n: Negotiated): void {
    if (b === this.secondary) {
      // Our own attempt, still connecting or waiting to retry, is not needed any more.
      const old = this.primary;
      this.primary = b;
      this.secondary = undefined;
      if (old.fsm.state === 'Connect' || old.fsm.state === 'Active') old.fsm.handle({ type: 'stop' });
      else if (old.fsm.state !== 'Idle') this.secondary = old;
    }
    this.clearTimer('restartTimer');
    const local = b.conn?.localAddress ?? '';
    this.established = { binding: b, since: this.ctx.clock.now(), negotiated: n, local };
    this.ctx.log.info(`peer ${this.address}: established (router id ${n.peerOpen.routerId}, hold ${n.holdTime} s)`);
    // Stale routes survive until End-of-RIB only for families whose forwarding state the peer kept.
    const gr = n.peerOpen.capabilities.gracefulRestart;
    for (const f of [4, 6] as Family[]) {
      const kept = gr?.families.some((x) => familyOf(x.afi) === f && x.forwarding);
      const negotiated = n.families.some((x) => familyOf(x.afi) === f);
      if (!kept || !negotiated) this.ctx.rib.dropPeer(this.address, f, true);
    }
    if (!this.ctx.rib.paths(this.address).some((p) => p.stale)) this.clearTimer('grTimer');
    this.resend(null);
    for (const f of n.families) b.fsm.send(endOfRibMessage(f.afi, f.safi));
    this.ctx.changed();
  }

  private families(): Family[] {
    return (this.established?.negotiated.families ?? []).map((f) => familyOf(f.afi)).filter((f): f is Family => f !== null);
  }

  private nextHop(family: Family): IP | undefined {
    const local = parseIP(this.established?.local ?? '');
    if (local && local.family === family) return local;
    return this.ctx.nextHop(family);
  }

  private ibgp(): boolean { return this.config.asn === this.ctx.asn; }

  private attributes() {
    const a = emptyAttributes();
    a.origin = C.ORIGIN_IGP;
    a.asPath = this.ibgp() ? [] : [{ type: C.AS_SEQUENCE, asns: [this.ctx.asn] }];
    if (this.ibgp()) a.localPref = 100;
    return a;
  }

  /** Sends prefixes (announce) or withdraws them, in as few UPDATEs as fit. */
  private send(prefixes: CIDR[], announce: boolean): void {
    const b = this.established?.binding;
    if (!b) return;
    for (const family of this.families()) {
      const mine = prefixes.filter((p) => p.ip.family === family);
      if (!mine.length) continue;
      const nh = this.nextHop(family);
      if (announce && !nh) {
        this.ctx.log.warn(`peer ${this.address}: no IPv${family} next hop to announce ${mine.length} prefixes with`);
        continue;
      }
      for (const part of chunks(mine, family === 4 ? V4_CHUNK : V6_CHUNK)) {
        const u: UpdateMessage = { type: 'update', withdrawn: [], attributes: announce ? this.attributes() : emptyAttributes(), nlri: [] };
        if (family === 4) {
          if (announce) { u.nlri = part; u.attributes.nextHop = nh; } else u.withdrawn = part;
        } else if (announce) {
          u.attributes.mpReach = { afi: C.AFI_IPV6, safi: C.SAFI_UNICAST, nextHops: [nh!], nlri: part };
        } else {
          u.attributes.mpUnreach = { afi: C.AFI_IPV6, safi: C.SAFI_UNICAST, withdrawn: part };
        }
        b.fsm.send(u);
      }
      for (const p of mine) {
        if (announce) this.exported.add(formatCIDR(p));
        else this.exported.delete(formatCIDR(p));
      }
    }
  }

  announce(prefixes: CIDR[]): void { this.send(prefixes, true); }
  withdraw(prefixes: CIDR[]): void { this.send(prefixes, false); }

  /** All our local prefixes again (after Established, or a ROUTE-REFRESH for one family). */
  resend(family: Family | null): void {
    this.announce(this.ctx.localPrefixes().filter((p) => family === null || p.ip.family === family));
  }

  onUpdate(u: UpdateMessage, treatAsWithdraw: string | undefined): void {
    const est = this.established;
    if (!est) return;
    const rib = this.ctx.rib;
    const eor = endOfRib(u);
    if (eor) {
      const f = familyOf(eor.afi);
      if (f) {
        const gone = rib.dropPeer(this.address, f, true);
        if (gone) this.ctx.log.info(`peer ${this.address}: End-of-RIB for IPv${f}, ${gone} stale routes removed`);
        if (!rib.paths(this.address).some((p) => p.stale)) this.clearTimer('grTimer');
      }
      this.ctx.changed();
      return;
    }
    const a = u.attributes;
    const allowed = new Set(this.families());
    for (const p of [...u.withdrawn, ...(a.mpUnreach?.withdrawn ?? [])]) rib.withdraw(this.address, p);
    // IPv4 usually comes in the classic fields, but MP_REACH may carry it too (RFC 4760).
    const mp = a.mpReach?.safi === C.SAFI_UNICAST ? a.mpReach : undefined;
    const mpFamily = mp ? familyOf(mp.afi) : null;
    const mpNlri = mp && mpFamily && allowed.has(mpFamily) ? mp.nlri : [];
    const classic = allowed.has(4) ? u.nlri : [];
    const v4 = [...classic, ...(mpFamily === 4 ? mpNlri : [])];
    const v6 = mpFamily === 6 ? mpNlri : [];
    const reject = treatAsWithdraw ?? missingMandatory(u, this.ibgp()) ?? this.loop(u);
    if (reject) {
      if (v4.length + v6.length) this.ctx.log.warn(`peer ${this.address}: ${reject}: ${v4.length + v6.length} prefixes treated as withdrawn`);
      for (const p of [...v4, ...v6]) rib.withdraw(this.address, p);
      this.ctx.changed();
      return;
    }
    // The path keeps the attributes that describe it; the MP attributes only carried the NLRI.
    const { mpReach: _reach, mpUnreach: _unreach, ...attributes } = a;
    const add = (prefix: CIDR, nextHop: IP | undefined) => {
      // An IPv6 next hop for IPv4 NLRI needs the extended next hop capability (RFC 8950), which we do not offer.
      if (!nextHop || nextHop.family !== prefix.ip.family) return rib.withdraw(this.address, prefix);
      const path: Path = { prefix, peer: this.address, peerRouterId: est.negotiated.peerOpen.routerId, ibgp: this.ibgp(), nextHop, attributes, stale: false };
      rib.add(path);
    };
    for (const p of classic) add(p, a.nextHop);
    // A 32-byte IPv6 next hop is global + link-local; the global one is routable without an interface.
    for (const p of mpNlri) add(p, mp!.nextHops[0]);
    const max = this.config.maxPrefix;
    if (max !== undefined && rib.count(this.address) > max) {
      this.ctx.log.warn(`peer ${this.address}: ${rib.count(this.address)} prefixes exceed the limit of ${max}`);
      const d = Buffer.alloc(7);
      d.writeUInt16BE(v6.length ? C.AFI_IPV6 : C.AFI_IPV4, 0);
      d[2] = C.SAFI_UNICAST;
      d.writeUInt32BE(max, 3);
      // Cease/1 (RFC 4486): AFI, SAFI and the limit as data. Trying again at once would only repeat it.
      est.binding.fsm.handle({ type: 'stop', notification: notification(C.ERR_CEASE, C.CEASE_MAX_PREFIXES, d) });
      const wait = this.config.maxPrefixRestartTime ?? 60;
      this.holdDownUntil = this.ctx.clock.now() + wait * 1000;
      if (!this.stopped) this.scheduleRestart(wait);
    }
    this.ctx.changed();
  }

  /** Loop checks: our AS in an eBGP path, our router id as ORIGINATOR_ID (a reflector sent our route back). */
  private loop(u: UpdateMessage): string | undefined {
    const a = u.attributes;
    if (!this.ibgp() && a.asPath?.some((s) => s.asns.includes(this.ctx.asn))) return `AS path ${JSON.stringify(a.asPath)} contains our AS`;
    if (a.originatorId === this.ctx.routerId) return 'ORIGINATOR_ID is our router id';
    return undefined;
  }

  status(): PeerStatus {
    const est = this.established;
    const b = est?.binding ?? this.primary;
    const stale = this.ctx.rib.paths(this.address).filter((p) => p.stale).length;
    const s: PeerStatus = {
      address: this.address, asn: this.config.asn, state: b.fsm.state,
      prefixesIn: this.ctx.rib.count(this.address), prefixesOut: this.exported.size,
      families: this.families().map((f) => `ipv${f}`),
    };
    if (est) {
      s.uptime = Math.floor((this.ctx.clock.now() - est.since) / 1000);
      s.routerId = est.negotiated.peerOpen.routerId;
    }
    if (this.lastError) s.lastError = this.lastError;
    if (stale) s.gracefulRestart = { stale, until: this.grUntil };
    return s;
  }
}
