/**
 * What the agent does that an operator counts, as typed events: metrics subscribe to these, so a
 * counter never depends on the wording of a log line. Every emitting site also logs, in words.
 */
export type AgentEvent =
  | { kind: 'lease'; result: 'ok' | 'error' | 'expired' }
  | { kind: 'node'; op: 'add' | 'del' | 'replace' }
  | { kind: 'resync'; reason: string }
  | { kind: 'watch'; reason: 'broken' | 'compacted' }
  /** A BGP session's FSM (any connection to the peer) changed state; states in lower case. */
  | { kind: 'bgp-transition'; peer: string; from: string; to: string }
  /** A gossip datagram (peer mode): accepted, or dropped and why (malformed, forged, replayed, stale, self, other_network). */
  | { kind: 'peer-message'; result: string }
  /** Something went wrong; `code` is a stable identifier (tether_errors_total's label). */
  | { kind: 'error'; code: string };

export class AgentEvents {
  private readonly subscribers = new Set<(e: AgentEvent) => void>();

  on(fn: (e: AgentEvent) => void): () => void {
    this.subscribers.add(fn);
    return () => { this.subscribers.delete(fn); };
  }

  emit(e: AgentEvent): void {
    // An observer must never break the agent it observes.
    for (const fn of this.subscribers) { try { fn(e); } catch { /* ignored */ } }
  }
}
