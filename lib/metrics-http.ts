import type { Server } from 'node:http';
import { nodeHttp } from './builtin.js';
import { CONTENT_TYPE, type Registry } from './metrics.js';

/** Where tetherd serves metrics unless configured: loopback only, so nothing is exposed by default. */
export const DEFAULT_METRICS_ADDRESS = '127.0.0.1:9310';

/** "host:port", "[v6]:port" or ":port" (every address) into listen() arguments; throws a message naming the problem. */
export function parseListenAddress(s: string): { host?: string; port: number } {
  const m = /^(?:\[([0-9a-fA-F:.]+)\]|([^:[\]]*)):(\d{1,5})$/.exec(s);
  const port = m ? Number(m[3]) : NaN;
  if (!m || !(port >= 0 && port <= 65535)) throw new Error(`metrics address must be host:port, [ipv6]:port or :port, got ${JSON.stringify(s)}`);
  const host = m[1] ?? m[2];
  return { host: host || undefined, port };
}

export interface MetricsServer {
  server: Server;
  /** The address actually bound, as host:port (port 0 asks the kernel for a free one). */
  address: string;
  close(): Promise<void>;
}

/** GET /metrics (the exposition), GET /healthz ("ok"); anything else 404, other methods 405. */
export function serveMetrics(registry: Registry, address = DEFAULT_METRICS_ADDRESS): Promise<MetricsServer> {
  const { host, port } = parseListenAddress(address);
  const server = nodeHttp().createServer((req, res) => {
    const path = (req.url ?? '/').split('?')[0];
    if (path !== '/metrics' && path !== '/healthz') { res.writeHead(404, { 'content-type': 'text/plain' }).end('not found: try /metrics\n'); return; }
    if (req.method !== 'GET' && req.method !== 'HEAD') { res.writeHead(405, { allow: 'GET, HEAD', 'content-type': 'text/plain' }).end('method not allowed\n'); return; }
    if (path === '/healthz') { res.writeHead(200, { 'content-type': 'text/plain' }).end('ok\n'); return; }
    registry.expose().then((body) => {
      res.writeHead(200, { 'content-type': CONTENT_TYPE, 'content-length': Buffer.byteLength(body) });
      res.end(req.method === 'HEAD' ? undefined : body);
    }, (e: unknown) => {
      res.writeHead(500, { 'content-type': 'text/plain' }).end(`metrics: ${(e as Error).message}\n`);
    });
  });
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      server.off('error', reject);
      const a = server.address();
      const bound = typeof a === 'object' && a ? (a.family === 'IPv6' ? `[${a.address}]:${a.port}` : `${a.address}:${a.port}`) : String(a);
      resolve({ server, address: bound, close: () => new Promise<void>((r) => server.close(() => r())) });
    });
  });
}
