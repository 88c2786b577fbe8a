import { readFileSync } from 'node:fs';
import { writeJsonAtomic } from '../json-file.js';

/**
 * What this node knows of an etcd cluster's members: which one answered last, and which failed
 * when and why. A plugin lives for one request, so the memory is kept in a small file beside the
 * node's IPAM data: the first ADD after a member dies pays for finding out, every later one goes
 * straight to a live member. A long-lived process (tetherd) keeps it in memory only.
 */
export interface MemberRecord {
  /** The endpoint that answered last. */
  preferred?: string;
  /** Endpoint to the time (ms since the epoch) and reason of its last failure. */
  failed: Record<string, { at: number; why: string }>;
}

/** A failure this recent puts the member after the others; it is still tried when they fail too. */
const SUSPECT_MS = 30_000;

export class Members {
  private rec: MemberRecord = { failed: {} };
  private dirty = false;

  constructor(private readonly endpoints: string[], private readonly file?: string) {
    this.reload();
  }

  /**
   * Reads what other processes learnt meanwhile: execs queued behind one that just found a member
   * dead must not each find out again (one small read per call; the file changes rarely).
   */
  reload(): void {
    if (!this.file || this.dirty) return;
    try {
      const r = JSON.parse(readFileSync(this.file, 'utf8')) as MemberRecord;
      if (r && typeof r === 'object' && typeof r.failed === 'object' && r.failed) this.rec = { preferred: typeof r.preferred === 'string' ? r.preferred : undefined, failed: r.failed };
    } catch { /* none yet, or unreadable: start from the configured order */ }
  }

  /** Endpoints to try, best first: the one that answered last, then the others, recent failures last. */
  order(now = Date.now()): string[] {
    const suspect = (e: string) => (now - (this.rec.failed[e]?.at ?? 0) < SUSPECT_MS ? 1 : 0);
    return [...this.endpoints].sort((a, b) => (suspect(a) - suspect(b))
      || ((b === this.rec.preferred ? 1 : 0) - (a === this.rec.preferred ? 1 : 0))
      || (this.rec.failed[a]?.at ?? 0) - (this.rec.failed[b]?.at ?? 0)
      || this.endpoints.indexOf(a) - this.endpoints.indexOf(b));
  }

  answered(endpoint: string): void {
    if (this.rec.preferred !== endpoint || this.rec.failed[endpoint]) {
      this.rec.preferred = endpoint;
      delete this.rec.failed[endpoint];
      this.dirty = true;
    }
  }

  failed(endpoint: string, why: string, now = Date.now()): void {
    this.rec.failed[endpoint] = { at: now, why: why.slice(0, 200) };
    if (this.rec.preferred === endpoint) this.rec.preferred = undefined;
    this.dirty = true;
  }

  /** Writes what changed; best effort, since losing it costs one slow request, not correctness. */
  save(): void {
    if (!this.file || !this.dirty) return;
    this.dirty = false;
    try { writeJsonAtomic(this.file, this.rec); } catch { /* a read-only or full disk is reported by the store itself */ }
  }
}
