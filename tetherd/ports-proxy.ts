import type { RemoteInfo, Socket as UdpSocket } from 'node:dgram';
import type { Server, Socket } from 'node:net';
import { nodeDgram, nodeNet } from '../lib/builtin.js';
import type { Logger } from '../lib/log.js';
import { listPortMappings, type InstalledMapping } from '../lib/portmap/index.js';

// Published ports on [::1]. The kernel cannot serve them: ::1 never leaves lo (IPv6 has no
// route_localnet), so a DNAT of [::1]:port to a container is dropped, and the port table's rules let
// ::1 through untouched. This proxy, in the long-lived node agent, listens on [::1]:hostPort for every
// IPv6 mapping on every address (hostIP unset or "::") or on ::1 itself, and relays to the container.
// It follows the port table the plugins write (nftables maps of inet tether_ports), so the per-container
// path neither execs nor waits for it: a port answers on [::1] within one poll after its ADD.

/** One listener the table asks for: protocol and host port on ::1, and where it leads. */
export interface LoopbackListener {
  protocol: 'tcp' | 'udp';
  hostPort: number;
  target: { ip: string; port: number };
}

const keyOf = (l: Pick<LoopbackListener, 'protocol' | 'hostPort'>) => `${l.protocol}/${l.hostPort}`;
const targetOf = (l: LoopbackListener) => `[${l.target.ip}]:${l.target.port}`;

/**
 * The listeners the port table calls for. SCTP is left out (no SCTP sockets in the runtime); a mapping
 * of another IPv6 hostIP is served by the kernel, and an IPv4-only mapping ("0.0.0.0", or a container
 * with no IPv6 address) is not published on IPv6 at all.
 */
export function loopbackListeners(table: InstalledMapping[]): LoopbackListener[] {
  const out = new Map<string, LoopbackListener>();
  for (const m of table) {
    if (m.family !== 6 || (m.protocol !== 'tcp' && m.protocol !== 'udp')) continue;
    if (m.hostIP !== undefined && m.hostIP !== '::1') continue;
    const l: LoopbackListener = { protocol: m.protocol, hostPort: m.hostPort, target: { ip: m.containerIP, port: m.containerPort } };
    // A ::1 mapping and an "every address" one of the same port cannot coexist (ADD refuses it); if a
    // table written by hand has both, the specific one wins, as in the kernel's rules.
    if (!out.has(keyOf(l)) || m.hostIP === '::1') out.set(keyOf(l), l);
  }
  return [...out.values()];
}

/** How long a UDP client's relay socket lives without traffic: as long as conntrack keeps a UDP stream. */
const UDP_IDLE_MS = 120_000;

interface Running {
  l: LoopbackListener;
  close(): void;
  /** Set when listening failed (the port taken on ::1 by another program): the next poll tries again. */
  failed?: string;
}

function tcpListener(l: LoopbackListener): Running {
  const conns = new Set<Socket>();
  let r: Running;
  const server: Server = nodeNet().createServer((client) => {
    const upstream = nodeNet().connect({ host: l.target.ip, port: l.target.port });
    conns.add(client);
    conns.add(upstream);
    const end = () => { client.destroy(); upstream.destroy(); conns.delete(client); conns.delete(upstream); };
    client.on('error', end).on('close', end);
    upstream.on('error', end).on('close', end);
    client.pipe(upstream);
    upstream.pipe(client);
  });
  server.on('error', (e) => { r.failed = e.message; });
  server.listen({ host: '::1', port: l.hostPort, ipv6Only: true });
  r = { l, close: () => { server.close(); for (const c of conns) c.destroy(); } };
  return r;
}

function udpListener(l: LoopbackListener): Running {
  let r: Running;
  const server: UdpSocket = nodeDgram().createSocket({ type: 'udp6', ipv6Only: true });
  const clients = new Map<string, { sock: UdpSocket; timer: NodeJS.Timeout }>();
  const forget = (k: string) => { const c = clients.get(k); if (c) { clearTimeout(c.timer); c.sock.close(); clients.delete(k); } };
  server.on('message', (msg: Buffer, from: RemoteInfo) => {
    const k = `${from.address} ${from.port}`;
    const touch = () => clients.get(k)?.timer.refresh();
    let c = clients.get(k);
    if (!c) {
      // One socket per client, so the container's replies come back to the client they answer.
      const sock = nodeDgram().createSocket(l.target.ip.includes(':') ? 'udp6' : 'udp4');
      sock.on('message', (reply: Buffer) => { server.send(reply, from.port, from.address); touch(); });
      sock.on('error', () => forget(k));
      c = { sock, timer: setTimeout(() => forget(k), UDP_IDLE_MS) };
      clients.set(k, c);
    }
    touch();
    c.sock.send(msg, l.target.port, l.target.ip);
  });
  server.on('error', (e) => { r.failed = e.message; });
  server.bind({ address: '::1', port: l.hostPort });
  r = { l, close: () => { for (const k of [...clients.keys()]) forget(k); try { server.close(); } catch { /* never bound */ } } };
  return r;
}

/** Keeps one listener on [::1] per published port of the table, polling it every `intervalMs`. */
export class LoopbackPortsProxy {
  private readonly running = new Map<string, Running>();
  private readonly warned = new Set<string>();
  private timer?: NodeJS.Timeout;

  constructor(private readonly log: Logger, private readonly intervalMs = 1000, private readonly read: () => InstalledMapping[] = listPortMappings) {}

  start(): void {
    this.sync();
    this.timer = setInterval(() => this.sync(), this.intervalMs);
  }

  stop(): void {
    clearInterval(this.timer);
    for (const r of this.running.values()) r.close();
    this.running.clear();
  }

  /** Brings the listeners in line with the table: one netlink dump of its four maps. */
  sync(): void {
    let want: LoopbackListener[];
    try { want = loopbackListeners(this.read()); } catch (e) {
      this.log.warn('ports proxy: cannot read the port table', { error: (e as Error).message });
      return;
    }
    const byKey = new Map(want.map((l) => [keyOf(l), l]));
    for (const [k, r] of this.running) {
      const w = byKey.get(k);
      if (r.failed && !this.warned.has(k)) {
        this.warned.add(k);
        this.log.warn('ports proxy: cannot listen', { listen: `[::1]:${r.l.hostPort}/${r.l.protocol}`, error: r.failed });
      }
      if (w && targetOf(w) === targetOf(r.l) && !r.failed) continue;
      r.close();
      this.running.delete(k);
      if (!w) this.warned.delete(k);
      if (!r.failed) this.log.info('ports proxy: stopped', { listen: `[::1]:${r.l.hostPort}/${r.l.protocol}`, to: targetOf(r.l) });
    }
    for (const [k, l] of byKey) {
      if (this.running.has(k)) continue;
      this.running.set(k, l.protocol === 'tcp' ? tcpListener(l) : udpListener(l));
      if (!this.warned.has(k)) this.log.info('ports proxy: listening', { listen: `[::1]:${l.hostPort}/${l.protocol}`, to: targetOf(l) });
    }
  }
}
