/**
 * One HTTP POST, the only other thing that differs by runtime: under Bun, node:http costs ~38 ms to a
 * first answer in the compiled binary and the native fetch ~1.5 ms (measured against etcd). Bun's fetch
 * also speaks to Unix sockets and presents client certificates; Node's does neither, so under Node
 * (the tests) the backend is node:http. The package "imports" condition picks one, as for system calls.
 */
export interface PostRequest {
  url: string;
  /** Talk HTTP over this Unix socket instead of TCP. */
  socketPath?: string;
  body: string;
  headers: Record<string, string>;
  timeoutMs: number;
  tls?: { ca?: Buffer; cert?: Buffer; key?: Buffer };
}

export interface PostResponse {
  status: number;
  text: string;
}

export { post } from '#http-backend';
