import { forgetNode } from '../ipam/retire.js';
import type { Logger } from '../lib/log.js';
import type { KV } from '../lib/store/kv.js';
import { nodeKey } from './bgp-plan.js';

/**
 * Giving a dead node's IPAM blocks back to the pool, without a person. A node that registers once
 * becomes a member (`members/<node>`, no lease); its node record (`nodes/<node>`) lives under a lease.
 * A member without a live record is gone: the first agent to see it writes when (`gone/<node>`); once it
 * has been gone longer than `reclaimAfter` (24 h by default, Flannel's lease life), its attachments are
 * released and its blocks deleted (ipam/retire.ts), and it stops being a member. A node that comes back
 * in time loses nothing. One agent does the work at a time: the live node whose name sorts first (no
 * election: any two that disagree both run the same conditional transactions, which is harmless).
 *
 * The price is the one Flannel pays: a node cut off from the store for longer than `reclaimAfter` finds
 * its blocks gone when it returns (its running pods' addresses may be handed out elsewhere), so the
 * period must be longer than any partition one would ride out. 0 turns it off.
 */
export const MEMBERS = 'members/';
export const GONE = 'gone/';

export interface Marker { since: number; version: number }

export type ReclaimAction =
  | { kind: 'mark'; node: string }
  | { kind: 'unmark'; node: string; version: number }
  | { kind: 'retire'; node: string; goneSince: number };

export interface ReclaimView {
  members: Set<string>;
  /** Nodes with a live record, this one included. */
  live: Set<string>;
  gone: Map<string, Marker>;
  now: number;
  afterMs: number;
}

/** Pure: what this round does. */
export function reclaimActions(v: ReclaimView): ReclaimAction[] {
  const out: ReclaimAction[] = [];
  for (const [node, m] of v.gone) if (v.live.has(node) || !v.members.has(node)) out.push({ kind: 'unmark', node, version: m.version });
  for (const node of [...v.members].sort()) {
    if (v.live.has(node)) continue;
    const m = v.gone.get(node);
    if (!m) out.push({ kind: 'mark', node });
    else if (v.now - m.since >= v.afterMs) out.push({ kind: 'retire', node, goneSince: m.since });
  }
  return out;
}

export const isReclaimer = (self: string, live: Iterable<string>) => [...live, self].sort()[0] === self;

function parseMarker(value: string, version: number): Marker | undefined {
  try {
    const since = Date.parse((JSON.parse(value) as { since?: unknown }).since as string);
    return Number.isNaN(since) ? undefined : { since, version };
  } catch { return undefined; }
}

export class Reclaimer {
  constructor(
    private readonly registry: KV,
    private readonly ipam: KV,
    private readonly self: string,
    private readonly afterMs: number,
    private readonly log: Logger,
    /** Wall-clock time: markers are compared across nodes (a day against seconds of skew). */
    private readonly clock: () => number = Date.now,
  ) {}

  /** Makes this node a member: written once, never under a lease. */
  async join(): Promise<void> {
    const key = MEMBERS + this.self;
    await this.registry.txn({ if: [{ key, version: 0 }], put: [{ key, value: JSON.stringify({ node: this.self, since: new Date(this.clock()).toISOString() }) }] });
  }

  /** One round, given the nodes with a live record right now (this one included). */
  async round(live: Set<string>): Promise<ReclaimAction[]> {
    if (!isReclaimer(this.self, live)) return [];
    const members = new Set([...(await this.registry.range(MEMBERS)).keys()].map((k) => k.slice(MEMBERS.length)));
    const gone = new Map<string, Marker>();
    for (const [k, e] of await this.registry.range(GONE)) {
      // A marker nobody can read is rewritten: the period starts again rather than being guessed.
      gone.set(k.slice(GONE.length), parseMarker(e.value, e.version) ?? { since: this.clock(), version: e.version });
    }
    const actions = reclaimActions({ members, live, gone, now: this.clock(), afterMs: this.afterMs });
    for (const a of actions) await this.carryOut(a);
    return actions;
  }

  private async carryOut(a: ReclaimAction): Promise<void> {
    const marker = GONE + a.node;
    switch (a.kind) {
      case 'mark':
        if (await this.registry.txn({ if: [{ key: marker, version: 0 }], put: [{ key: marker, value: JSON.stringify({ since: new Date(this.clock()).toISOString() }) }] })) {
          this.log.warn('node gone: its blocks go back to the pool if it is not back in time', { node: a.node, reclaimAfterSec: this.afterMs / 1000 });
        }
        return;
      case 'unmark':
        await this.registry.txn({ if: [{ key: marker, version: a.version }], del: [marker] });
        this.log.info('node back (or no longer a member): nothing of it is reclaimed', { node: a.node });
        return;
      case 'retire': {
        // It may have come back since the round began: its record, not the round's view, decides.
        if (await this.registry.get(nodeKey(a.node))) return;
        const r = await forgetNode(this.ipam, a.node);
        this.log.warn('node gone for good: its addresses and blocks went back to the pool', {
          node: a.node, goneSince: new Date(a.goneSince).toISOString(), released: r.released.map((x) => x.ip), blocksFreed: r.blocksFreed, blocksKept: r.blocksKept,
        });
        // Blocks other nodes' pods borrowed from stay until those pods go: the node stays a member (and marked) until then.
        if (r.blocksKept.length) return;
        const m = await this.registry.get(marker);
        await this.registry.txn({ if: [{ key: nodeKey(a.node), version: 0 }, ...(m ? [{ key: marker, version: m.version }] : [])], del: [MEMBERS + a.node, marker] });
      }
    }
  }
}
