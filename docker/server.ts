import type { IncomingMessage, Server, ServerResponse } from 'node:http';
import { chmodSync, lstatSync, mkdirSync, unlinkSync } from 'node:fs';
import { dirname } from 'node:path';
import type { Logger } from '../lib/log.js';
import { PLUGIN_MEDIA_TYPE, type ActivateResponse, type ReconcileRequest, type ReconcileResponse } from './api.js';
import { badRequest, DriverError, errorText } from './errors.js';
import type { IpamDriver } from './ipam.js';
import type { NetworkDriver } from './network.js';

type Handler = (body: any) => unknown;

/** Per-method call counts and durations: `POST /Tether.Stats` on the same socket (the bench reads it). */
export interface MethodStats { calls: number; errors: number; totalMs: number; maxMs: number; samplesMs: number[] }

const MAX_SAMPLES = 10_000;

/** The routing table: every method of both APIs, plus Plugin.Activate and tether's own Tether.Stats, Tether.Reconcile and Tether.Refresh. */
export function routes(net: NetworkDriver, ipam: IpamDriver, stats: () => unknown): Map<string, Handler> {
  const activate: ActivateResponse = { Implements: ['NetworkDriver', 'IpamDriver'] };
  return new Map<string, Handler>([
    ['Plugin.Activate', () => activate],
    ['NetworkDriver.GetCapabilities', () => net.capabilities()],
    ['NetworkDriver.CreateNetwork', (b) => net.createNetwork(b)],
    ['NetworkDriver.DeleteNetwork', (b) => net.deleteNetwork(b)],
    ['NetworkDriver.AllocateNetwork', (b) => net.allocateNetwork(b)],
    ['NetworkDriver.FreeNetwork', () => net.freeNetwork()],
    ['NetworkDriver.CreateEndpoint', (b) => net.createEndpoint(b)],
    ['NetworkDriver.EndpointOperInfo', (b) => net.endpointOperInfo(b)],
    ['NetworkDriver.DeleteEndpoint', (b) => net.deleteEndpoint(b)],
    ['NetworkDriver.Join', (b) => net.join(b)],
    ['NetworkDriver.Leave', (b) => net.leave(b)],
    ['NetworkDriver.DiscoverNew', () => net.discover()],
    ['NetworkDriver.DiscoverDelete', () => net.discover()],
    ['NetworkDriver.ProgramExternalConnectivity', (b) => net.programExternalConnectivity(b)],
    ['NetworkDriver.RevokeExternalConnectivity', (b) => net.revokeExternalConnectivity(b)],
    ['IpamDriver.GetCapabilities', () => ipam.capabilities()],
    ['IpamDriver.GetDefaultAddressSpaces', () => ipam.addressSpaces()],
    ['IpamDriver.RequestPool', (b) => ipam.requestPool(b)],
    ['IpamDriver.ReleasePool', (b) => ipam.releasePool(b)],
    ['IpamDriver.RequestAddress', (b) => ipam.requestAddress(b)],
    ['IpamDriver.ReleaseAddress', (b) => ipam.releaseAddress(b)],
    ['Tether.Stats', () => stats()],
    ['Tether.Reconcile', (b) => reconcile(net, ipam, b)],
    ['Tether.Refresh', () => net.refreshHosts()],
  ]);
}

async function reconcile(net: NetworkDriver, ipam: IpamDriver, r: ReconcileRequest): Promise<ReconcileResponse> {
  if (!Array.isArray(r.Endpoints) || !Array.isArray(r.Addresses)) throw badRequest('tether: Tether.Reconcile needs {"Endpoints": [...], "Addresses": [...]}');
  const { endpoints, veths } = await net.reconcile(r.Endpoints);
  const released = await ipam.reconcile(new Set(r.Addresses), r.GraceMs ?? 60_000);
  return { RemovedEndpoints: endpoints, RemovedVeths: veths, ReleasedAddresses: released };
}

/** Methods whose body may be empty (dockerd sends none). */
const NO_BODY = new Set(['Plugin.Activate', 'NetworkDriver.GetCapabilities', 'IpamDriver.GetCapabilities', 'IpamDriver.GetDefaultAddressSpaces', 'Tether.Stats', 'Tether.Refresh']);

/**
 * Answers one request: the method's result, or {"Err": text} with 400 (a request that cannot be
 * read), 404 (a method neither API has: dockerd reads that as "not implemented") or 500.
 */
export class PluginServer {
  private readonly table: Map<string, Handler>;
  private readonly stats = new Map<string, MethodStats>();
  /** One request at a time: each is a few ms of netlink and store work, and the state needs no locking. */
  private queue: Promise<unknown> = Promise.resolve();
  private server?: Server;

  constructor(net: NetworkDriver, ipam: IpamDriver, private readonly log: Logger) {
    this.table = routes(net, ipam, () => Object.fromEntries(this.stats));
  }

  async handle(path: string, body: string): Promise<{ status: number; json: unknown }> {
    const method = path.replace(/^\//, '');
    const fn = this.table.get(method);
    if (!fn) return { status: 404, json: { Err: `tether: ${path} is not an endpoint of the NetworkDriver or IpamDriver plugin API` } };
    let req: unknown = null;
    if (body.trim()) {
      try { req = JSON.parse(body); } catch (e) { return { status: 400, json: { Err: `tether: ${method}: the request body is not JSON (${(e as Error).message})` } }; }
    }
    if (!NO_BODY.has(method) && (req === null || typeof req !== 'object' || Array.isArray(req))) {
      return { status: 400, json: { Err: `tether: ${method} needs a JSON object body` } };
    }
    const run = this.queue.then(async () => {
      const t0 = performance.now();
      try {
        const json = await fn(req);
        this.record(method, performance.now() - t0, false);
        return { status: 200, json };
      } catch (e) {
        const ms = performance.now() - t0;
        this.record(method, ms, true);
        const status = e instanceof DriverError ? e.status : 500;
        const text = errorText(e);
        this.log.warn('request refused', { method, status, error: text, duration_ms: Math.round(ms * 100) / 100 });
        return { status, json: { Err: text.startsWith('tether') ? text : `tether: ${method}: ${text}` } };
      }
    });
    this.queue = run;
    return run;
  }

  /**
   * Runs `fn` in turn with the requests, not counted as one: driver work that must not interleave with
   * a request's (the periodic refresh's kernel changes, after its store read outside the queue).
   */
  exclusive<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.queue.then(fn);
    this.queue = run.catch(() => undefined);
    return run;
  }

  private record(method: string, ms: number, failed: boolean): void {
    let s = this.stats.get(method);
    if (!s) { s = { calls: 0, errors: 0, totalMs: 0, maxMs: 0, samplesMs: [] }; this.stats.set(method, s); }
    s.calls++;
    if (failed) s.errors++;
    s.totalMs += ms;
    s.maxMs = Math.max(s.maxMs, ms);
    if (s.samplesMs.length < MAX_SAMPLES) s.samplesMs.push(Math.round(ms * 1000) / 1000);
  }

  /** Listens on the Unix socket; a stale socket file of a previous run is replaced, anything else is refused. */
  async listen(socket: string): Promise<void> {
    mkdirSync(dirname(socket), { recursive: true, mode: 0o755 });
    try {
      const st = lstatSync(socket);
      if (!st.isSocket()) throw new DriverError(`${socket} exists and is not a socket; refusing to replace it`);
      unlinkSync(socket);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
    }
    const http = process.getBuiltinModule('node:http') as typeof import('node:http');
    const server = http.createServer((req, res) => { void this.serve(req, res); });
    // dockerd keeps connections open between calls; no request should wait on an idle one.
    server.keepAliveTimeout = 60_000;
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(socket, () => { server.off('error', reject); resolve(); });
    });
    chmodSync(socket, 0o660);
    this.server = server;
  }

  private async serve(req: IncomingMessage, res: ServerResponse): Promise<void> {
    // Events, not `for await`: an async iterator costs more than the request itself (a few hundred bytes).
    const chunks: Buffer[] = [];
    await new Promise<void>((resolve, reject) => {
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', resolve);
      req.on('error', reject);
    });
    const out = req.method === 'POST'
      ? await this.handle(req.url ?? '/', Buffer.concat(chunks).toString('utf8'))
      : { status: 405, json: { Err: `tether: the plugin API is POST /<Interface>.<Method>, not ${req.method} ${req.url}` } };
    const text = JSON.stringify(out.json);
    res.writeHead(out.status, { 'Content-Type': PLUGIN_MEDIA_TYPE, 'Content-Length': Buffer.byteLength(text) });
    res.end(text);
  }

  /** Stops accepting; waits for the request in progress. */
  async close(socket?: string): Promise<void> {
    const s = this.server;
    this.server = undefined;
    if (s) await new Promise<void>((r) => { s.close(() => r()); s.closeAllConnections?.(); });
    await this.queue.catch(() => undefined);
    if (socket) { try { unlinkSync(socket); } catch { /* gone already */ } }
  }
}
