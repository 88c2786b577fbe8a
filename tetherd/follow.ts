import type { Logger } from '../lib/log.js';
import type { AgentEvents } from './events.js';
import type { Entry } from '../lib/store/kv.js';
import type { EtcdKV, WatchEvent } from '../lib/store/etcd.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export interface FollowHandlers {
  /** A full listing (at start, after a compaction, at each resync): the watcher rebuilds its view from it. */
  listed(entries: Map<string, Entry & { lease?: string }>): void;
  /** Changes after the listing, in order. */
  events(evs: WatchEvent[]): void;
}

/**
 * Keeps a view of every key under a prefix: lists, then watches from the listing's revision + 1. A
 * broken stream resumes from the last revision seen; a compacted one lists again; and every
 * `resyncMs` a fresh listing repairs whatever a watch can miss (etcd drops the tombstones of a
 * compaction at exactly the revision a watcher resumes from without reporting the watch compacted).
 * Store outages are retried with backoff until stop().
 */
export class Follower {
  private revision = 0;
  private watch?: { close(): void };
  private timer?: NodeJS.Timeout;
  private stopped = false;

  constructor(private readonly kv: EtcdKV, private readonly prefix: string, private readonly h: FollowHandlers, private readonly log: Logger, private readonly resyncMs: number, private readonly events?: AgentEvents) {}

  /** Resolves after the first listing has been handed over. */
  async start(): Promise<void> {
    await this.sync();
    this.timer = setInterval(() => { void this.resync(); }, this.resyncMs);
  }

  stop(): void {
    this.stopped = true;
    clearInterval(this.timer);
    this.watch?.close();
  }

  async resync(): Promise<void> {
    if (this.stopped) return;
    this.watch?.close();
    await this.retry(() => this.sync());
  }

  private async sync(): Promise<void> {
    const { entries, revision } = await this.kv.rangeWithRevision(this.prefix);
    if (this.stopped) return;
    this.revision = revision;
    this.h.listed(entries);
    this.follow();
  }

  private follow(): void {
    if (this.stopped) return;
    this.watch?.close(); // one stream at a time, whichever path (resume, re-list, resync) opens the next
    this.watch = this.kv.watch(this.prefix, this.revision + 1, {
      events: (evs, rev) => { this.h.events(evs); this.revision = rev; },
      compacted: (rev) => {
        this.log.warn('watch fell behind compaction; listing again', { prefix: this.prefix, compactRevision: rev, had: this.revision });
        this.events?.emit({ kind: 'watch', reason: 'compacted' });
        void this.retry(() => this.sync());
      },
      broken: (err) => {
        if (this.stopped) return;
        this.log.warn('watch broke; resuming', { prefix: this.prefix, error: err.message, fromRevision: this.revision + 1 });
        this.events?.emit({ kind: 'watch', reason: 'broken' });
        this.events?.emit({ kind: 'error', code: 'watch_broken' });
        void this.retry(async () => { await sleep(200); this.follow(); });
      },
    });
  }

  private async retry(fn: () => Promise<void>): Promise<void> {
    for (let delay = 200; !this.stopped; delay = Math.min(delay * 2, 5000)) {
      try { await fn(); return; } catch (e) {
        this.log.warn('store unreachable; retrying', { error: (e as Error).message, inMs: delay });
        this.events?.emit({ kind: 'error', code: 'store_unreachable' });
        await sleep(delay);
      }
    }
  }
}
