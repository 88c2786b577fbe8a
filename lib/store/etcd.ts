import { readFileSync } from 'node:fs';
import { post } from '../sys/http.js';
import { postStream, type Stream } from '../sys/http-stream.js';
import { Members } from './etcd-members.js';
import { StoreUnavailableError, type Entry, type KV, type Txn } from './kv.js';

/**
 * The KV on etcd's v3 API through its JSON gateway (etcd 3.4+: POST /v3/kv/range, /v3/kv/txn): no gRPC
 * stack to load, so a plugin exec pays a few milliseconds, not the ~130 ms the gRPC client costs. Every
 * conditional write is a txn comparing mod revisions (or version 0 for "absent"), so the allocator's
 * compare-and-swap means exactly what it means on the embedded store.
 */
export interface EtcdOptions {
  endpoints: string[];
  /** Every key is stored under this prefix. */
  prefix: string;
  tls?: { ca?: string; cert?: string; key?: string };
  username?: string;
  password?: string;
  /**
   * How long an operation waits with no member answering anything before it fails; while members
   * answer (a slow cluster on a loaded node), it waits on.
   */
  timeoutMs?: number;
  /** A node-local file remembering which member answered and which failed, shared by every exec (etcd-members.ts). */
  membersFile?: string;
}

interface RawKV { key: string; value?: string; mod_revision?: string; lease?: string }

/** One change seen by a watch: a put (with the new value) or a delete of a key under the watched prefix. */
export interface WatchEvent {
  type: 'put' | 'delete';
  /** The key without the client's prefix. */
  key: string;
  value: string;
  /** The key's mod revision after the change. */
  version: number;
}

export interface WatchHandlers {
  /** Events of one revision batch, and the store revision they bring the watcher to. */
  events(events: WatchEvent[], revision: number): void;
  /** The start revision was compacted away: the watcher must list again and resume from the list's revision. */
  compacted(compactRevision: number): void;
  /** The stream broke or could not be opened: the watcher resumes from the last revision it saw. */
  broken(err: Error): void;
}

const b64 = (s: string) => Buffer.from(s).toString('base64');
const unb64 = (s: string | undefined) => (s ? Buffer.from(s, 'base64').toString() : '');

/** The smallest key greater than every key with this prefix: etcd's range_end for a prefix scan. */
export function prefixEnd(prefix: string): Buffer {
  const b = Buffer.from(prefix);
  for (let i = b.length - 1; i >= 0; i--) {
    if (b[i] < 0xff) {
      const end = Buffer.from(b.subarray(0, i + 1));
      end[i]++;
      return end;
    }
  }
  return Buffer.from([0]); // every key
}

export class EtcdKV implements KV {
  readonly where: string;
  private readonly opts: EtcdOptions;
  private readonly tls?: { ca?: Buffer; cert?: Buffer; key?: Buffer };
  private readonly members: Members;
  /** When a member last answered this client, and (decaying) how long answers took. */
  private answeredAt = 0;
  private slowest = 0;
  private token?: string;

  constructor(opts: EtcdOptions) {
    if (!opts.endpoints.length) throw new StoreUnavailableError('no etcd endpoints configured');
    this.opts = opts;
    this.where = opts.endpoints.join(',');
    this.members = new Members(opts.endpoints, opts.membersFile);
    if (opts.tls) {
      const read = (p?: string) => (p ? readFileSync(p) : undefined);
      this.tls = { ca: read(opts.tls.ca), cert: read(opts.tls.cert), key: read(opts.tls.key) };
    }
  }

  /** unix:///path/to/socket: etcd listening on a Unix socket, which (unlike TCP) every network namespace reaches. */
  private target(endpoint: string, path: string) {
    const socketPath = endpoint.startsWith('unix://') ? endpoint.slice('unix://'.length) : undefined;
    const url = new URL(path, socketPath ? 'http://localhost' : endpoint).toString();
    return {
      url, socketPath, tls: url.startsWith('https:') ? this.tls : undefined,
      headers: { 'content-type': 'application/json', ...(this.token ? { authorization: this.token } : {}) } as Record<string, string>,
    };
  }

  private async request(endpoint: string, path: string, body: unknown, timeoutMs: number): Promise<{ status: number; json: any }> {
    const r = await post({ ...this.target(endpoint, path), body: JSON.stringify(body), timeoutMs });
    let json: any;
    try { json = r.text ? JSON.parse(r.text) : {}; } catch { json = { error: r.text }; }
    return { status: r.status, json };
  }

  /** One request to one member: its answer, a StoreUnavailableError it refused with, or an Error meaning "ask another". */
  private async attempt(endpoint: string, path: string, body: unknown, timeoutMs: number): Promise<any> {
    if (this.opts.username && !this.token) await this.authenticate(endpoint, timeoutMs);
    let r = await this.request(endpoint, path, body, timeoutMs);
    if (r.status === 401 || /invalid auth token|token is invalid/i.test(String(r.json?.error ?? r.json?.message ?? ''))) {
      this.token = undefined;
      if (this.opts.username) await this.authenticate(endpoint, timeoutMs);
      r = await this.request(endpoint, path, body, timeoutMs);
    }
    // The gateway maps gRPC codes to HTTP: Unavailable 503, DeadlineExceeded 504, Canceled 408 (a member
    // shutting down says "the client connection is closing"). Those mean "ask another member".
    if (r.status >= 500 || r.status === 0 || r.status === 408 || r.status === 429) throw new Error(`HTTP ${r.status} ${JSON.stringify(r.json).slice(0, 200)}`);
    if (r.status >= 400) throw new StoreUnavailableError(`etcd at ${endpoint} refused ${path}: HTTP ${r.status} ${r.json?.error ?? r.json?.message ?? ''}`);
    return r.json;
  }

  /**
   * One call. Members are tried best first (the one that answered last; recent failures last). An
   * idempotent call that gets no answer within the hedge delay is sent to the next member as well and
   * the first answer wins, so a member that died or went silent costs one hedge delay, not a timeout;
   * the loser is remembered as suspect. (Conditional transactions are idempotent here: a copy that
   * arrives second fails its comparison and changes nothing.) The call gives up only when the whole
   * budget passes with no member answering anything in this client, so a cluster that is slow but
   * serving, as on a loaded node, is waited for.
   */
  private call(path: string, body: unknown, idempotent = true): Promise<any> {
    const budget = this.opts.timeoutMs ?? 4000;
    const started = Date.now();
    const deadline = () => Math.max(started, this.answeredAt) + budget;
    const errors = new Map<string, string>();
    this.members.reload();
    return new Promise((resolve, reject) => {
      const pending = new Map<string, number>();
      let tried = new Set<string>();
      let settled = false;
      let timer: ReturnType<typeof setTimeout> | undefined;
      const finish = (f: () => void) => {
        if (settled) return;
        settled = true;
        if (timer) clearTimeout(timer);
        this.members.save();
        f();
      };
      const later = (ms: number) => {
        if (timer) clearTimeout(timer);
        timer = setTimeout(step, Math.max(1, ms));
      };
      const launch = (endpoint: string, timeout: number) => {
        tried.add(endpoint);
        pending.set(endpoint, Date.now());
        this.attempt(endpoint, path, body, timeout).then((json) => {
          const now = Date.now();
          const took = now - pending.get(endpoint)!;
          pending.delete(endpoint);
          // Whoever is still silent after another member answered is suspect for the next call.
          const hedge = this.hedgeMs();
          for (const [ep, since] of pending) if (now - since >= hedge) this.members.failed(ep, `no answer within ${now - since} ms while ${endpoint} answered`);
          this.answeredAt = now;
          this.slowest = Math.max(this.slowest * 0.8, took);
          this.members.answered(endpoint);
          finish(() => resolve(json));
        }, (e: Error) => {
          pending.delete(endpoint);
          if (settled) return;
          if (e instanceof StoreUnavailableError) { finish(() => reject(e)); return; }
          errors.set(endpoint, e.message);
          this.members.failed(endpoint, e.message);
          step();
        });
      };
      // Launches what can be launched now, then sleeps until the next reason to look again.
      const step = () => {
        if (settled) return;
        const left = deadline() - Date.now();
        if (left <= 0) {
          const why = [...errors].map(([k, v]) => `${k}: ${v}`);
          for (const ep of pending.keys()) if (!errors.has(ep)) why.push(`${ep}: no answer`);
          finish(() => reject(new StoreUnavailableError(`etcd unreachable for ${budget} ms at ${this.where} (${why.join('; ') || 'no member tried'})`)));
          return;
        }
        const candidates = this.members.order().filter((ep) => !pending.has(ep) && !tried.has(ep));
        if (candidates.length && (idempotent || pending.size === 0)) {
          // One member at a time gets a fair share of what is left; hedged, each may use it all.
          launch(candidates[0], Math.max(200, idempotent ? left : Math.floor(left / candidates.length)));
          later(idempotent && candidates.length > 1 ? this.hedgeMs() : left);
          return;
        }
        if (!candidates.length && pending.size < this.opts.endpoints.length) {
          // Every member that is not still busy with this call has failed it (a leader election, a
          // restart): ask them again shortly, while the budget lasts.
          tried = new Set(pending.keys());
          later(Math.min(left, 100 + Math.random() * 200));
          return;
        }
        later(left);
      };
      step();
    });
  }

  /** How long to wait for a member before asking the next one too: a few times the slowest answer seen lately. */
  private hedgeMs(): number {
    const budget = this.opts.timeoutMs ?? 4000;
    return Math.min(Math.max(250, 4 * this.slowest), budget / 2);
  }

  private async authenticate(endpoint: string, timeoutMs: number): Promise<void> {
    const r = await this.request(endpoint, '/v3/auth/authenticate', { name: this.opts.username, password: this.opts.password ?? '' }, timeoutMs);
    if (r.status !== 200 || !r.json?.token) throw new StoreUnavailableError(`etcd at ${endpoint} refused the credentials of user "${this.opts.username}"`);
    this.token = r.json.token;
  }

  private toEntry(kv: RawKV): Entry {
    return { value: unb64(kv.value), version: Number(kv.mod_revision ?? 0) };
  }

  async get(key: string): Promise<Entry | undefined> {
    const r = await this.call('/v3/kv/range', { key: b64(this.opts.prefix + key) });
    const kv = (r.kvs as RawKV[] | undefined)?.[0];
    return kv ? this.toEntry(kv) : undefined;
  }

  async range(prefix: string): Promise<Map<string, Entry>> {
    const full = this.opts.prefix + prefix;
    const r = await this.call('/v3/kv/range', { key: b64(full), range_end: prefixEnd(full).toString('base64'), sort_order: 'ASCEND', sort_target: 'KEY' });
    const out = new Map<string, Entry>();
    for (const kv of (r.kvs as RawKV[] | undefined) ?? []) out.set(unb64(kv.key).slice(this.opts.prefix.length), this.toEntry(kv));
    return out;
  }

  /** Every key under prefix and the store revision the listing was taken at (a watch resumes after it). */
  async rangeWithRevision(prefix: string): Promise<{ entries: Map<string, Entry & { lease?: string }>; revision: number }> {
    const full = this.opts.prefix + prefix;
    const r = await this.call('/v3/kv/range', { key: b64(full), range_end: prefixEnd(full).toString('base64'), sort_order: 'ASCEND', sort_target: 'KEY' });
    const entries = new Map<string, Entry & { lease?: string }>();
    for (const kv of (r.kvs as RawKV[] | undefined) ?? []) {
      entries.set(unb64(kv.key).slice(this.opts.prefix.length), { ...this.toEntry(kv), ...(kv.lease && kv.lease !== '0' ? { lease: kv.lease } : {}) });
    }
    return { entries, revision: Number(r.header?.revision ?? 0) };
  }

  // ---- leases: a key written with a lease disappears when the lease expires or is revoked

  /** A new lease of ttlSeconds; its ID is a decimal string (64-bit, beyond a JS number's precision). */
  async leaseGrant(ttlSeconds: number): Promise<string> {
    const r = await this.call('/v3/lease/grant', { TTL: String(ttlSeconds), ID: '0' }, false);
    if (!r.ID) throw new StoreUnavailableError(`etcd at ${this.where} granted no lease: ${JSON.stringify(r).slice(0, 200)}`);
    return String(r.ID);
  }

  /** Renews the lease; returns its TTL in seconds, 0 when it no longer exists (expired or revoked). */
  async leaseKeepAlive(id: string): Promise<number> {
    const r = await this.call('/v3/lease/keepalive', { ID: id });
    return Number(r.result?.TTL ?? 0);
  }

  /** Revokes the lease, deleting every key attached to it; a lease already gone is not an error. */
  async leaseRevoke(id: string): Promise<void> {
    try {
      await this.call('/v3/lease/revoke', { ID: id });
    } catch (e) {
      if (!/lease not found/i.test((e as Error).message)) throw e;
    }
  }

  // ---- watch

  /**
   * Watches every key under prefix from startRevision on (etcd's /v3/watch, one streamed response).
   * The caller resumes after broken() from the last revision it was given, and after compacted() with
   * a fresh listing. Endpoints are tried in turn until one accepts the stream.
   */
  watch(prefix: string, startRevision: number, h: WatchHandlers): { close(): void } {
    const full = this.opts.prefix + prefix;
    const body = JSON.stringify({ create_request: { key: b64(full), range_end: prefixEnd(full).toString('base64'), start_revision: String(startRevision) } });
    let stream: Stream | undefined;
    let closed = false;
    let failed = false;
    const fail = (e: Error) => { if (!closed && !failed) { failed = true; stream?.close(); h.broken(e); } };
    const open = async (k: number) => {
      const endpoint = this.members.order()[k % this.opts.endpoints.length];
      try {
        if (this.opts.username && !this.token) await this.authenticate(endpoint, this.opts.timeoutMs ?? 4000);
      } catch (e) { fail(e as Error); return; }
      if (closed) return;
      let created = false;
      stream = postStream({
        ...this.target(endpoint, '/v3/watch'), body,
        onDocument: (doc) => {
          const res = (doc as { result?: any; error?: any }).result;
          if (!res) { fail(new Error(`etcd watch error: ${JSON.stringify(doc).slice(0, 200)}`)); return; }
          if (res.created) { created = true; return; }
          if (res.canceled) {
            const compact = Number(res.compact_revision ?? 0);
            if (compact > 0) { failed = true; stream?.close(); h.compacted(compact); } else fail(new Error(`etcd cancelled the watch: ${res.cancel_reason ?? 'no reason given'}`));
            return;
          }
          const events: WatchEvent[] = ((res.events as { type?: string; kv: RawKV }[] | undefined) ?? []).map((ev) => ({
            // The gateway leaves enum fields at their zero value (PUT) out of the JSON.
            type: ev.type === 'DELETE' ? 'delete' : 'put',
            key: unb64(ev.kv.key).slice(this.opts.prefix.length),
            value: unb64(ev.kv.value),
            version: Number(ev.kv.mod_revision ?? 0),
          }));
          if (events.length) h.events(events, Number(res.header?.revision ?? events[events.length - 1].version));
        },
        onEnd: (err) => {
          if (!created && k + 1 < this.opts.endpoints.length && !closed) { void open(k + 1); return; }
          fail(err ?? new Error('etcd closed the watch stream'));
        },
      });
    };
    void open(0);
    return { close: () => { closed = true; stream?.close(); } };
  }

  /** Like txn, with every put attached to a lease. */
  async txn(t: Txn, o: { lease?: string } = {}): Promise<boolean> {
    const compare = t.if.map((c) => (c.version === 0
      ? { key: b64(this.opts.prefix + c.key), target: 'VERSION', result: 'EQUAL', version: '0' }
      : { key: b64(this.opts.prefix + c.key), target: 'MOD', result: 'EQUAL', mod_revision: String(c.version) }));
    const success = [
      ...(t.put ?? []).map((p) => ({ request_put: { key: b64(this.opts.prefix + p.key), value: b64(p.value), ...(o.lease ? { lease: o.lease } : {}) } })),
      ...(t.del ?? []).map((k) => ({ request_delete_range: { key: b64(this.opts.prefix + k) } })),
    ];
    // Without conditions a copy would apply twice: such a transaction goes to one member at a time.
    const r = await this.call('/v3/kv/txn', { compare, success }, compare.length > 0);
    return r.succeeded === true;
  }

  close(): void { /* connections are not kept alive between calls */ }
}
