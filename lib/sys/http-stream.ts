import type { ClientRequest, IncomingMessage } from 'node:http';

/**
 * A long-lived HTTP POST whose response body is a stream of newline-separated JSON documents (etcd's
 * /v3/watch through its gateway). Only long-running programs (tetherd) use it, so the ~40 ms node:http
 * costs under Bun is paid once and not per exec; it is the same module under both runtimes.
 */
export interface StreamRequest {
  url: string;
  socketPath?: string;
  body: string;
  headers: Record<string, string>;
  tls?: { ca?: Buffer; cert?: Buffer; key?: Buffer };
  /** Called with each JSON document as it arrives. */
  onDocument(doc: unknown): void;
  /** Called once: the stream ended (err undefined) or broke. Never called after close(). */
  onEnd(err?: Error): void;
}

export interface Stream { close(): void }

export function postStream(r: StreamRequest): Stream {
  const url = new URL(r.url);
  const https = url.protocol === 'https:';
  const mod = process.getBuiltinModule(https ? 'node:https' : 'node:http') as typeof import('node:https');
  let closed = false;
  let ended = false;
  const end = (err?: Error) => {
    if (closed || ended) return;
    ended = true;
    r.onEnd(err);
  };
  const req: ClientRequest = mod.request(url, {
    method: 'POST',
    headers: { ...r.headers, 'content-length': Buffer.byteLength(r.body) },
    ...(r.socketPath ? { socketPath: r.socketPath } : {}),
    ...(https && r.tls ? { ca: r.tls.ca, cert: r.tls.cert, key: r.tls.key } : {}),
  }, (res: IncomingMessage) => {
    if ((res.statusCode ?? 0) >= 300) {
      end(new Error(`HTTP ${res.statusCode}`));
      res.resume();
      return;
    }
    let buf = '';
    res.setEncoding('utf8');
    res.on('data', (chunk: string) => {
      buf += chunk;
      // The gateway writes one document per line; a document split across chunks waits for its newline.
      for (let nl = buf.indexOf('\n'); nl >= 0; nl = buf.indexOf('\n')) {
        const line = buf.slice(0, nl).trim();
        buf = buf.slice(nl + 1);
        if (!line || closed) continue;
        let doc: unknown;
        try { doc = JSON.parse(line); } catch { end(new Error(`not JSON in the stream: ${line.slice(0, 120)}`)); req.destroy(); return; }
        r.onDocument(doc);
      }
    });
    res.on('end', () => end());
    res.on('error', (e: Error) => end(e));
  });
  req.on('error', (e: Error) => end(e));
  req.end(r.body);
  return { close: () => { closed = true; req.destroy(); } };
}
