import { EventEmitter } from 'node:events';
import type * as net from 'node:net';
import { nodeNet } from '../builtin.js';
import { sys } from '../sys/index.js';

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
  /**
   * GTSM (RFC 5082): send with TTL 255, drop anything that arrives with less than 254, so only a
   * directly connected peer can reach the session. Throws when the socket gives no access to it.
   */
  ttlSecurity?(): void;
}

export interface ConnectOptions { host: string; port: number; localAddress?: string }

export interface Listener { close(): void }

export interface Transport {
  /** Starts a connection; cb gets it or the error. Returns a cancel function. */
  connect(o: ConnectOptions, cb: (err: Error | null, c?: Connection) => void): () => void;
  /** ttl255: answer SYNs with TTL 255, so GTSM peers (RFC 5082) accept our side of the handshake. */
  listen(o: { host: string; port: number; ttl255?: boolean }, onConnection: (c: Connection) => void): Promise<Listener>;
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

  ttlSecurity(): void {
    const fd = fdOf(this.sock);
    const v6 = net4or6(this.localAddress) === 6;
    sys.setsockopt(fd, v6 ? IPPROTO_IPV6 : IPPROTO_IP, v6 ? IPV6_UNICAST_HOPS : IP_TTL, int32(255));
    sys.setsockopt(fd, v6 ? IPPROTO_IPV6 : IPPROTO_IP, v6 ? IPV6_MINHOPCOUNT : IP_MINTTL, int32(254));
  }
}

/** Node and Bun both expose a socket's or server's descriptor on its handle. */
function fdOf(o: object): number {
  const fd = (o as { _handle?: { fd?: number } })._handle?.fd;
  if (typeof fd !== 'number' || fd < 0) throw new Error('the socket has no file descriptor to set TTL options on');
  return fd;
}

function int32(n: number): Uint8Array {
  const b = new Uint8Array(4);
  new DataView(b.buffer).setInt32(0, n, true);
  return b;
}

const IPPROTO_IP = 0;
const IP_TTL = 2;
const IP_MINTTL = 21;
const IPPROTO_IPV6 = 41;
const IPV6_UNICAST_HOPS = 16;
const IPV6_MINHOPCOUNT = 73;

function net4or6(a: string): 4 | 6 { return a.includes(':') ? 6 : 4; }

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
        try {
          // Accepted sockets inherit it; their minimum TTL is set per peer (ttlSecurity()).
          if (o.ttl255) sys.setsockopt(fdOf(server), net4or6(o.host) === 6 ? IPPROTO_IPV6 : IPPROTO_IP, net4or6(o.host) === 6 ? IPV6_UNICAST_HOPS : IP_TTL, int32(255));
        } catch (e) {
          server.close();
          return reject(e);
        }
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
