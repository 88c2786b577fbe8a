import type { PostRequest, PostResponse } from './http.js';

export async function post(r: PostRequest): Promise<PostResponse> {
  const init: Record<string, unknown> = {
    method: 'POST', body: r.body, headers: r.headers, signal: AbortSignal.timeout(r.timeoutMs),
  };
  if (r.socketPath) init.unix = r.socketPath;
  if (r.tls) init.tls = { ca: r.tls.ca?.toString(), cert: r.tls.cert?.toString(), key: r.tls.key?.toString() };
  try {
    const res = await fetch(r.url, init as RequestInit);
    return { status: res.status, text: await res.text() };
  } catch (e) {
    const err = e as Error;
    throw new Error(err.name === 'TimeoutError' ? `no answer within ${r.timeoutMs} ms` : err.message);
  }
}
