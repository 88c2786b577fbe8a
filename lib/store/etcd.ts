import { readFileSync } from 'node:fs';
import { post } from '../sys/http.js';
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
  /** The whole budget of one operation across every endpoint. */
  timeoutMs?: number;
}

interface RawKV { key: string; value?: string; mod_revision?: string }

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
  private preferred = 0;
  private token?: string;

  constructor(opts: EtcdOptions) {
    if (!opts.endpoints.length) throw new StoreUnavailableError('no etcd endpoints configured');
    this.opts = opts;
    this.where = opts.endpoints.join(',');
    if (opts.tls) {
      const read = (p?: string) => (p ? readFileSync(p) : undefined);
      this.tls = { ca: read(opts.tls.ca), cert: read(opts.tls.cert), key: read(opts.tls.key) };
    }
  }

  private async request(endpoint: string, path: string, body: unknown, timeoutMs: number): Promise<{ status: number; json: any }> {
    // unix:///path/to/socket: etcd listening on a Unix socket, which (unlike TCP) every network namespace reaches.
    const socketPath = endpoint.startsWith('unix://') ? endpoint.slice('unix://'.length) : undefined;
    const url = new URL(path, socketPath ? 'http://localhost' : endpoint).toString();
    const r = await post({
      url, socketPath, body: JSON.stringify(body), timeoutMs, tls: url.startsWith('https:') ? this.tls : undefined,
      headers: { 'content-type': 'application/json', ...(this.token ? { authorization: this.token } : {}) },
    });
    let json: any;
    try { json = r.text ? JSON.parse(r.text) : {}; } catch { json = { error: r.text }; }
    return { status: r.status, json };
  }

  /** One call, tried on each endpoint in turn (the last one that worked first), within the deadline. */
  private async call(path: string, body: unknown): Promise<any> {
    const budget = this.opts.timeoutMs ?? 4000;
    const deadline = Date.now() + budget;
    const n = this.opts.endpoints.length;
    const errors: string[] = [];
    for (let k = 0; k < n; k++) {
      const i = (this.preferred + k) % n;
      const endpoint = this.opts.endpoints[i];
      const left = deadline - Date.now();
      if (left <= 0) break;
      // Each endpoint gets a fair share of what is left, so one dead member cannot eat the whole budget.
      const slice = Math.max(200, Math.floor(left / (n - k)));
      try {
        if (this.opts.username && !this.token) await this.authenticate(endpoint, slice);
        let r = await this.request(endpoint, path, body, slice);
        if (r.status === 401 || /invalid auth token|token is invalid/i.test(String(r.json?.error ?? r.json?.message ?? ''))) {
          this.token = undefined;
          if (this.opts.username) await this.authenticate(endpoint, slice);
          r = await this.request(endpoint, path, body, slice);
        }
        // The gateway maps gRPC codes to HTTP: Unavailable 503, DeadlineExceeded 504, Canceled 408 (a member
        // shutting down says "the client connection is closing"). Those mean "ask another member".
        if (r.status >= 500 || r.status === 0 || r.status === 408 || r.status === 429) throw new Error(`HTTP ${r.status} ${JSON.stringify(r.json).slice(0, 200)}`);
        if (r.status >= 400) throw new StoreUnavailableError(`etcd at ${endpoint} refused ${path}: HTTP ${r.status} ${r.json?.error ?? r.json?.message ?? ''}`);
        this.preferred = i;
        return r.json;
      } catch (e) {
        if (e instanceof StoreUnavailableError) throw e;
        errors.push(`${endpoint}: ${(e as Error).message}`);
      }
    }
    throw new StoreUnavailableError(`etcd unreachable within ${budget} ms at ${this.where} (${errors.join('; ') || 'no time left'})`);
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

  async txn(t: Txn): Promise<boolean> {
    const compare = t.if.map((c) => (c.version === 0
      ? { key: b64(this.opts.prefix + c.key), target: 'VERSION', result: 'EQUAL', version: '0' }
      : { key: b64(this.opts.prefix + c.key), target: 'MOD', result: 'EQUAL', mod_revision: String(c.version) }));
    const success = [
      ...(t.put ?? []).map((p) => ({ request_put: { key: b64(this.opts.prefix + p.key), value: b64(p.value) } })),
      ...(t.del ?? []).map((k) => ({ request_delete_range: { key: b64(this.opts.prefix + k) } })),
    ];
    const r = await this.call('/v3/kv/txn', { compare, success });
    return r.succeeded === true;
  }

  close(): void { /* connections are not kept alive between calls */ }
}
