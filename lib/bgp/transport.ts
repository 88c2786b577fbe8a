import { EventEmitter } from 'node:events';
import type * as net from 'node:net';
import { nodeNet } from '../builtin.js';

// How sessions reach their peers: TCP through node:net in production; an in-memory pair for unit
// tests and the benchmark, so a hundred peers need neither sockets nor namespaces.

export interface Connection {
  readonly localAddress: string;
  readonly remoteAddress: string;
  write(b: Uint8Array): void;
  /** Flushes what was written, then closes. Idempotent. */
  close(): void;
  onData(fn: (b: Buffer) => void): void;
  /** Called once, when the connection is gone for whatever reason. */
  onClose(fn: () => void): void;
}

export interface ConnectOptions { host: string; port: number; localAddress?: string }

export interface Listener { close(): void }

export interface Transport {
  /** Starts a connection; cb gets it or the error. Returns a cancel function. */
  connect(o: ConnectOptions, cb: (err: Error | null, c?: Connection) => void): () => void;
  listen(o: { host: string; port: number }, onConnection: (c: Connection) => void): Promise<Listener>;
}

/** Strips the ::ffff: of IPv4 peers accepted on a dual-stack socket. */
function plainAddress(a: string | undefined): string {
  if (!a) return '';
  return a.startsWith('::ffff:') && a.includes('.') ? a.slice(7) : a;
}

class SocketConnection implements Connection {
  private closed = false;
  private readonly closeFns: (() => void)[] = [];
  readonly localAddress: string;
  readonly remoteAddress: string;

  constructor(private readonly sock: net.Socket) {
    this.localAddress = plainAddress(sock.localAddress);
    this.remoteAddress = plainAddress(sock.remoteAddress);
    sock.setNoDelay(true);
    sock.on('error', () => { /* reported through close */ });
    sock.on('close', () => this.gone());
  }

  private gone(): void {
    if (this.closed) return;
    this.closed = true;
    for (const fn of this.closeFns) fn();
  }

  write(b: Uint8Array): void { if (!this.closed && !this.sock.destroyed) this.sock.write(b); }

  close(): void {
    if (this.sock.destroyed) return;
    // end() flushes a pending NOTIFICATION; destroy after a grace period in case the peer never reads.
    this.sock.end();
    setTimeout(() => this.sock.destroy(), 1000).unref();
  }

  onData(fn: (b: Buffer) => void): void { this.sock.on('data', fn); }
  onClose(fn: () => void): void { this.closeFns.push(fn); }
}

export const tcpTransport: Transport = {
  connect(o, cb) {
    let done = false;
    const sock = nodeNet().connect({ host: o.host, port: o.port, localAddress: o.localAddress });
    sock.once('connect', () => { done = true; cb(null, new SocketConnection(sock)); });
    sock.once('error', (e) => { if (!done) { done = true; sock.destroy(); cb(e); } });
    return () => { if (!done) { done = true; sock.destroy(); } };
  },
  listen(o, onConnection) {
    return new Promise((resolve, reject) => {
      const server = nodeNet().createServer((sock) => onConnection(new SocketConnection(sock)));
      server.once('error', reject);
      server.listen({ host: o.host, port: o.port, exclusive: true }, () => {
        server.off('error', reject);
        resolve({ close: () => server.close() });
      });
    });
  },
};

/** Both ends of an in-memory connection; data arrives on a later tick, as it would over TCP. */
class MemoryEnd implements Connection {
  peer!: MemoryEnd;
  private readonly events = new EventEmitter();
  private closed = false;
  constructor(readonly localAddress: string, readonly remoteAddress: string) {}
  write(b: Uint8Array): void {
    if (this.closed) return;
    const copy = Buffer.from(b);
    setImmediate(() => { if (!this.peer.closed) this.peer.events.emit('data', copy); });
  }
  close(): void {
    if (this.closed) return;
    setImmediate(() => { this.shut(); this.peer.shut(); });
  }
  private shut(): void {
    if (this.closed) return;
    this.closed = true;
    this.events.emit('close');
  }
  onData(fn: (b: Buffer) => void): void { this.events.on('data', fn); }
  onClose(fn: () => void): void { this.events.once('close', fn); }
}

/** A loopback "network" of addresses inside one process. */
export class MemoryNetwork {
  private readonly listeners = new Map<string, (c: Connection) => void>();

  transport(localAddress: string): Transport {
    return {
      connect: (o, cb) => {
        let cancelled = false;
        setImmediate(() => {
          if (cancelled) return;
          const l = this.listeners.get(`${o.host}:${o.port}`);
          if (!l) return cb(Object.assign(new Error(`connect ECONNREFUSED ${o.host}:${o.port}`), { code: 'ECONNREFUSED' }));
          const a = new MemoryEnd(o.localAddress ?? localAddress, o.host);
          const b = new MemoryEnd(o.host, o.localAddress ?? localAddress);
          a.peer = b;
          b.peer = a;
          l(b);
          cb(null, a);
        });
        return () => { cancelled = true; };
      },
      listen: async (o, onConnection) => {
        const key = `${o.host}:${o.port}`;
        if (this.listeners.has(key)) throw Object.assign(new Error(`listen EADDRINUSE ${key}`), { code: 'EADDRINUSE' });
        this.listeners.set(key, onConnection);
        return { close: () => { this.listeners.delete(key); } };
      },
    };
  }
}
