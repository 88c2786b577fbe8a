import * as C from './constants.js';
import { notification } from './codec.js';
import type { AfiSafi, BgpError, Capabilities, Message, NotificationMessage, OpenMessage, UpdateMessage } from './messages.js';

// The BGP finite state machine of RFC 4271 8, for one transport connection, as a pure state machine:
// events in (start, TCP up/down, a decoded message, a timer), actions out (send, connect, disconnect,
// established, down). Time comes from a Clock so tests drive it by hand; no socket is touched here.

export type State = 'Idle' | 'Connect' | 'Active' | 'OpenSent' | 'OpenConfirm' | 'Established';

export interface Clock {
  now(): number;
  setTimeout(fn: () => void, ms: number): unknown;
  clearTimeout(handle: unknown): void;
}

export const systemClock: Clock = {
  now: () => Date.now(),
  setTimeout: (fn, ms) => { const t = setTimeout(fn, ms); t.unref?.(); return t; },
  clearTimeout: (h) => clearTimeout(h as NodeJS.Timeout),
};

export interface FsmConfig {
  localAsn: number;
  routerId: string;
  peerAsn: number;
  /** Seconds we propose; the session uses min(ours, peer's). 0 = no keepalives. */
  holdTime: number;
  connectRetryTime: number;
  /** Wait for the peer to connect; never connect out. */
  passive: boolean;
  /** What we advertise in OPEN. */
  capabilities: Capabilities;
}

/** The session's parameters, once both OPENs are known. */
export interface Negotiated {
  peerOpen: OpenMessage;
  holdTime: number;
  keepaliveTime: number;
  as4: boolean;
  families: AfiSafi[];
}

export type DownReason =
  | { kind: 'stopped'; notification?: NotificationMessage }
  | { kind: 'notification-sent'; notification: NotificationMessage }
  | { kind: 'notification-received'; notification: NotificationMessage }
  | { kind: 'tcp-closed' }
  | { kind: 'tcp-failed' };

export type FsmEvent =
  | { type: 'start' }
  | { type: 'stop'; notification?: NotificationMessage }
  | { type: 'tcp-connected' }
  | { type: 'tcp-accepted' }
  | { type: 'tcp-failed' }
  | { type: 'tcp-closed' }
  | { type: 'message'; message: Message; treatAsWithdraw?: string }
  | { type: 'protocol-error'; error: BgpError };

export interface FsmOutput {
  send(m: Message): void;
  connect(): void;
  disconnect(): void;
  /** A valid OPEN arrived. Return false to lose a connection collision (we then send Cease/7). */
  openReceived?(open: OpenMessage): boolean;
  established(n: Negotiated): void;
  update(u: UpdateMessage, treatAsWithdraw: string | undefined): void;
  routeRefresh?(afi: number, safi: number): void;
  /** Left OpenSent or later for Idle, or a connection attempt failed. */
  down(reason: DownReason, wasEstablished: boolean): void;
  stateChanged?(from: State, to: State): void;
}

type TimerName = 'connectRetry' | 'hold' | 'keepalive';

/** The RFC's suggested large hold time while waiting for the peer's OPEN. */
const OPEN_HOLD_TIME = 240;

export class Fsm {
  state: State = 'Idle';
  negotiated?: Negotiated;
  /** Whether the current connection was opened by us (decides connection collisions). */
  direction?: 'out' | 'in';
  private readonly timers = new Map<TimerName, unknown>();

  constructor(readonly config: FsmConfig, private readonly out: FsmOutput, private readonly clock: Clock = systemClock) {}

  handle(ev: FsmEvent): void {
    switch (ev.type) {
      case 'start': return this.onStart();
      case 'stop': return this.onStop(ev.notification);
      case 'tcp-connected': return this.onTcpUp('out');
      case 'tcp-accepted': return this.onTcpUp('in');
      case 'tcp-failed': return this.onTcpFailed();
      case 'tcp-closed': return this.fail({ kind: 'tcp-closed' }, false);
      case 'protocol-error': return this.fail({ kind: 'notification-sent', notification: notification(ev.error.code, ev.error.subcode, ev.error.data) }, true);
      case 'message': return this.onMessage(ev.message, ev.treatAsWithdraw);
    }
  }

  private setState(s: State): void {
    if (s === this.state) return;
    const from = this.state;
    this.state = s;
    this.out.stateChanged?.(from, s);
  }

  private arm(name: TimerName, seconds: number, fn: () => void): void {
    this.disarm(name);
    if (seconds <= 0) return;
    this.timers.set(name, this.clock.setTimeout(() => { this.timers.delete(name); fn(); }, seconds * 1000));
  }

  private disarm(name: TimerName): void {
    const h = this.timers.get(name);
    if (h !== undefined) this.clock.clearTimeout(h);
    this.timers.delete(name);
  }

  private disarmAll(): void { for (const n of [...this.timers.keys()]) this.disarm(n); }

  private onStart(): void {
    if (this.state !== 'Idle') return;
    if (this.config.passive) {
      this.setState('Active');
    } else {
      this.setState('Connect');
      this.out.connect();
      this.arm('connectRetry', this.config.connectRetryTime, () => this.onConnectRetry());
    }
  }

  private onConnectRetry(): void {
    if (this.state === 'Connect') {
      this.out.disconnect(); // the attempt in progress is abandoned and retried
      this.out.connect();
    } else if (this.state === 'Active' && !this.config.passive) {
      this.setState('Connect');
      this.out.connect();
    } else return;
    this.arm('connectRetry', this.config.connectRetryTime, () => this.onConnectRetry());
  }

  private onTcpUp(direction: 'out' | 'in'): void {
    if (this.state !== 'Connect' && this.state !== 'Active') {
      // Not ours to take: the session handles a second connection as a collision candidate.
      return;
    }
    this.direction = direction;
    this.disarm('connectRetry');
    this.out.send(this.buildOpen());
    this.arm('hold', OPEN_HOLD_TIME, () => this.onHoldExpired());
    this.setState('OpenSent');
  }

  private onTcpFailed(): void {
    if (this.state === 'Connect') {
      // Wait in Active for the retry timer (or for the peer to connect to us).
      this.setState('Active');
      this.out.down({ kind: 'tcp-failed' }, false);
    }
  }

  private onHoldExpired(): void {
    if (this.state === 'OpenSent' || this.state === 'OpenConfirm' || this.state === 'Established') {
      this.fail({ kind: 'notification-sent', notification: notification(C.ERR_HOLD_TIMER_EXPIRED, 0) }, true);
    }
  }

  private onStop(n?: NotificationMessage): void {
    const connected = this.state === 'OpenSent' || this.state === 'OpenConfirm' || this.state === 'Established';
    const wasEstablished = this.state === 'Established';
    const note = n ?? notification(C.ERR_CEASE, C.CEASE_ADMIN_SHUTDOWN);
    if (connected) this.out.send(note);
    this.toIdle();
    if (connected) this.out.down({ kind: 'stopped', notification: note }, wasEstablished);
  }

  private toIdle(): void {
    this.disarmAll();
    this.out.disconnect();
    this.negotiated = undefined;
    this.direction = undefined;
    this.setState('Idle');
  }

  /**
   * An error: optionally tell the peer, drop the connection, go Idle. Starting again (after an idle hold
   * time) is the session's decision: it may hold a second connection to the same peer.
   */
  private fail(reason: DownReason, sendNotification: boolean): void {
    if (this.state === 'Idle') return;
    if (this.state === 'Connect' || this.state === 'Active') {
      // No BGP session on this connection yet: keep trying.
      return;
    }
    const wasEstablished = this.state === 'Established';
    if (sendNotification && reason.kind === 'notification-sent') this.out.send(reason.notification);
    this.toIdle();
    this.out.down(reason, wasEstablished);
  }

  private buildOpen(): OpenMessage {
    const asn = this.config.localAsn;
    return {
      type: 'open', version: 4, myAs: asn > 0xffff ? C.AS_TRANS : asn, holdTime: this.config.holdTime,
      routerId: this.config.routerId, capabilities: this.config.capabilities,
    };
  }

  /** OPEN checks of RFC 4271 6.2; returns the NOTIFICATION for a bad one. */
  private checkOpen(o: OpenMessage): NotificationMessage | null {
    const peerAsn = o.capabilities.as4 ?? o.myAs;
    if (peerAsn !== this.config.peerAsn) {
      const d = Buffer.alloc(4);
      d.writeUInt32BE(peerAsn);
      return notification(C.ERR_OPEN, C.ERR_OPEN_BAD_PEER_AS, d);
    }
    if (o.holdTime === 1 || o.holdTime === 2) {
      const d = Buffer.alloc(2);
      d.writeUInt16BE(o.holdTime);
      return notification(C.ERR_OPEN, C.ERR_OPEN_BAD_HOLD_TIME, d);
    }
    if (o.routerId === '0.0.0.0' || (peerAsn === this.config.localAsn && o.routerId === this.config.routerId)) {
      return notification(C.ERR_OPEN, C.ERR_OPEN_BAD_BGP_ID);
    }
    return null;
  }

  private negotiate(o: OpenMessage): Negotiated {
    const holdTime = Math.min(this.config.holdTime, o.holdTime);
    const ours = this.config.capabilities.multiprotocol.length ? this.config.capabilities.multiprotocol : [{ afi: C.AFI_IPV4, safi: C.SAFI_UNICAST }];
    const theirs = o.capabilities.multiprotocol.length ? o.capabilities.multiprotocol : [{ afi: C.AFI_IPV4, safi: C.SAFI_UNICAST }];
    return {
      peerOpen: o,
      holdTime,
      keepaliveTime: Math.floor(holdTime / 3),
      as4: this.config.capabilities.as4 !== undefined && o.capabilities.as4 !== undefined,
      families: ours.filter((f) => theirs.some((g) => g.afi === f.afi && g.safi === f.safi)),
    };
  }

  private armHold(): void {
    // arm() with 0 only disarms: a negotiated hold time of 0 means no hold timer at all.
    this.arm('hold', this.negotiated?.holdTime ?? OPEN_HOLD_TIME, () => this.onHoldExpired());
  }

  private armKeepalive(): void {
    const k = this.negotiated?.keepaliveTime ?? 0;
    if (k > 0) this.arm('keepalive', k, () => { this.out.send({ type: 'keepalive' }); this.armKeepalive(); });
  }

  private onMessage(m: Message, treatAsWithdraw?: string): void {
    if (m.type === 'notification') {
      if (this.state === 'OpenSent' || this.state === 'OpenConfirm' || this.state === 'Established') {
        this.fail({ kind: 'notification-received', notification: m }, false);
      }
      return;
    }
    switch (this.state) {
      case 'OpenSent':
        if (m.type !== 'open') return this.fsmError(C.ERR_FSM_OPENSENT);
        {
          const bad = this.checkOpen(m);
          if (bad) return this.fail({ kind: 'notification-sent', notification: bad }, true);
          if (this.out.openReceived && !this.out.openReceived(m)) {
            return this.fail({ kind: 'notification-sent', notification: notification(C.ERR_CEASE, C.CEASE_COLLISION) }, true);
          }
          this.negotiated = this.negotiate(m);
          this.out.send({ type: 'keepalive' });
          this.armHold();
          this.armKeepalive();
          this.setState('OpenConfirm');
        }
        return;
      case 'OpenConfirm':
        if (m.type === 'keepalive') {
          this.armHold();
          this.setState('Established');
          this.out.established(this.negotiated!);
          return;
        }
        return this.fsmError(C.ERR_FSM_OPENCONFIRM);
      case 'Established':
        if (m.type === 'keepalive') { this.armHold(); return; }
        if (m.type === 'update') { this.armHold(); this.out.update(m, treatAsWithdraw); return; }
        if (m.type === 'route-refresh') { this.out.routeRefresh?.(m.afi, m.safi); return; }
        return this.fsmError(C.ERR_FSM_ESTABLISHED);
      default:
        // Idle/Connect/Active have no BGP conversation; a stray message is dropped with its connection.
        return;
    }
  }

  private fsmError(subcode: number): void {
    this.fail({ kind: 'notification-sent', notification: notification(C.ERR_FSM, subcode) }, true);
  }

  /** Ends this connection after losing a collision detected elsewhere (the other connection is kept). */
  collisionLost(): void {
    this.fail({ kind: 'notification-sent', notification: notification(C.ERR_CEASE, C.CEASE_COLLISION) }, true);
  }

  /** Sends a message on an established session (UPDATE, ROUTE-REFRESH). */
  send(m: Message): void {
    if (this.state === 'Established') this.out.send(m);
  }

  /** The peer's BGP identifier once its OPEN has been read. */
  get remoteId(): string | undefined { return this.negotiated?.peerOpen.routerId; }
}

/** RFC 4271 6.8: the connection opened by the speaker with the higher BGP identifier survives. */
export function collisionKeeps(localId: string, remoteId: string): 'out' | 'in' {
  const n = (id: string) => id.split('.').reduce((a, x) => a * 256 + Number(x), 0);
  return n(localId) > n(remoteId) ? 'out' : 'in';
}
