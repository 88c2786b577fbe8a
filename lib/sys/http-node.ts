import type { IncomingMessage } from 'node:http';
import type { PostRequest, PostResponse } from './http.js';

export function post(r: PostRequest): Promise<PostResponse> {
  const url = new URL(r.url);
  const https = url.protocol === 'https:';
  const mod = process.getBuiltinModule(https ? 'node:https' : 'node:http') as typeof import('node:https');
  return new Promise((resolve, reject) => {
    const req = mod.request(url, {
      method: 'POST',
      headers: { ...r.headers, 'content-length': Buffer.byteLength(r.body) },
      timeout: r.timeoutMs,
      ...(r.socketPath ? { socketPath: r.socketPath } : {}),
      ...(https && r.tls ? { ca: r.tls.ca, cert: r.tls.cert, key: r.tls.key } : {}),
    }, (res: IncomingMessage) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, text: Buffer.concat(chunks).toString() }));
      res.on('error', reject);
    });
    req.on('timeout', () => req.destroy(new Error(`no answer within ${r.timeoutMs} ms`)));
    req.on('error', reject);
    req.end(r.body);
  });
}
