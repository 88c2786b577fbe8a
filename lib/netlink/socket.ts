import { sys } from '../sys/index.js';
import { errnoDescription, errnoName } from '../sys/errno.js';
import {
  AF_NETLINK, MSG_TRUNC, SOCK_CLOEXEC, SOCK_RAW, SOL_NETLINK, SOL_SOCKET, SO_RCVBUF, SO_RCVTIMEO,
} from '../sys/types.js';
import {
  MESSAGE_NAMES, NETLINK_CAP_ACK, NETLINK_EXT_ACK, NETLINK_GET_STRICT_CHK, NETLINK_ROUTE, NLMSGERR_ATTR_MSG,
  NLMSG_DONE, NLMSG_ERROR, NLMSG_NOOP, NLMSG_OVERRUN, NLM_F_ACK, NLM_F_ACK_TLVS, NLM_F_CAPPED, NLM_F_DUMP, NLM_F_DUMP_INTR,
  NLM_F_MULTI,
} from './constants.js';
import { Attrs, MessageWriter, align4, parseMessages, type NetlinkMessage } from './wire.js';

/** A request the kernel refused: errno plus the kernel's own explanation when it gave one (extended ack). */
export class NetlinkError extends Error {
  readonly errno: number;
  readonly code: string;
  readonly operation: string;
  readonly kernelMessage?: string;
  constructor(operation: string, errno: number, kernelMessage?: string) {
    super(`${operation}: ${errnoDescription(errno)}${kernelMessage ? ` (kernel: ${kernelMessage})` : ''}`);
    this.name = 'NetlinkError';
    this.errno = errno;
    this.code = errnoName(errno);
    this.operation = operation;
    this.kernelMessage = kernelMessage;
  }
}

// The kernel sizes dump replies to at most 32 KiB per datagram (NLMSG_GOODSIZE, or what the reader asked
// for before); 64 KiB leaves room, and MSG_TRUNC turns anything larger into an error instead of a misread.
// Not zero-filled: pages a reply never reaches are never touched, so they cost no memory.
const RECV_BUFFER = 1 << 16;
const DUMP_RETRIES = 5;

function opName(w: MessageWriter): string {
  return MESSAGE_NAMES[w.type] ?? `netlink message ${w.type}`;
}

/** Decodes an NLMSG_ERROR (or an erroring NLMSG_DONE) payload: 0 is an ACK, otherwise a NetlinkError. */
export function decodeError(msg: NetlinkMessage, operation: string): NetlinkError | null {
  const errno = -msg.payload.readInt32LE(0);
  if (errno === 0) return null;
  let text: string | undefined;
  if (msg.flags & NLM_F_ACK_TLVS) {
    // With NETLINK_CAP_ACK the echoed request is only its 16-byte header; the TLVs follow it.
    // NLMSG_DONE carries just the error; NLMSG_ERROR also echoes the request (only its header when capped).
    const echoedLen = msg.type === NLMSG_DONE ? 0 : msg.payload.length >= 20 ? msg.payload.readUInt32LE(4) : 0;
    const capped = msg.type !== NLMSG_DONE && (msg.flags & NLM_F_CAPPED) !== 0;
    const tlvStart = 4 + (capped ? 16 : align4(echoedLen));
    if (tlvStart <= msg.payload.length) text = new Attrs(msg.payload, tlvStart).str(NLMSGERR_ATTR_MSG);
  }
  return new NetlinkError(operation, errno, text || undefined);
}

/**
 * A blocking rtnetlink socket. It lives in the network namespace of the thread that opened it,
 * for its whole life, which is what lets a handle act inside a container after the thread has left.
 */
export class NetlinkSocket {
  private fd: number;
  private seq: number;
  private readonly rx = Buffer.allocUnsafeSlow(RECV_BUFFER);

  private constructor(fd: number) {
    this.fd = fd;
    this.seq = (Date.now() & 0x7fffffff) >>> 0;
  }

  static open(protocol = NETLINK_ROUTE): NetlinkSocket {
    const fd = sys.socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, protocol);
    try {
      const one = new Uint8Array(new Uint32Array([1]).buffer);
      sys.setsockopt(fd, SOL_NETLINK, NETLINK_EXT_ACK, one);
      sys.setsockopt(fd, SOL_NETLINK, NETLINK_CAP_ACK, one);
      // Strict checking makes the kernel honour dump filters (table, ifindex, master) instead of ignoring them.
      sys.setsockopt(fd, SOL_NETLINK, NETLINK_GET_STRICT_CHK, one);
      sys.setsockopt(fd, SOL_SOCKET, SO_RCVBUF, new Uint8Array(new Uint32Array([RECV_BUFFER]).buffer));
      // The kernel answers at once; a receive that waits this long means something is badly wrong.
      sys.setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, new Uint8Array(new BigInt64Array([10n, 0n]).buffer));
      const addr = new Uint8Array(12); // sockaddr_nl: family, pad, pid 0 (kernel assigns), groups 0
      addr[0] = AF_NETLINK;
      sys.bind(fd, addr);
    } catch (e) {
      sys.close(fd);
      throw e;
    }
    return new NetlinkSocket(fd);
  }

  /** A socket of this protocol in the current namespace for the length of fn, closed after (also when fn throws). */
  static within<T>(protocol: number, fn: (sock: NetlinkSocket) => T): T {
    const sock = NetlinkSocket.open(protocol);
    try { return fn(sock); } finally { sock.close(); }
  }

  close(): void {
    if (this.fd >= 0) sys.close(this.fd);
    this.fd = -1;
  }

  private send(w: MessageWriter): number {
    if (this.fd < 0) throw new Error('netlink socket is closed');
    const seq = this.seq = (this.seq + 1) >>> 0;
    const msg = w.finish(seq);
    sys.send(this.fd, msg, msg.length);
    return seq;
  }

  private receive(operation: string): NetlinkMessage[] {
    for (;;) {
      try {
        const n = sys.recv(this.fd, this.rx, MSG_TRUNC);
        if (n > this.rx.length) throw new Error(`${operation}: netlink reply of ${n} bytes was truncated`);
        return parseMessages(this.rx.subarray(0, n));
      } catch (e) {
        if ((e as { code?: string }).code === 'EINTR') continue;
        throw e;
      }
    }
  }

  /** Sends a request with NLM_F_ACK and waits for the ACK. Returns any messages echoed before it. */
  exec(w: MessageWriter): NetlinkMessage[] {
    const operation = opName(w);
    if (!(w.flags & NLM_F_ACK)) throw new Error(`${operation}: exec needs NLM_F_ACK`);
    const seq = this.send(w);
    const out: NetlinkMessage[] = [];
    for (;;) {
      for (const m of this.receive(operation)) {
        if (m.seq !== seq) continue; // a late reply to an earlier, abandoned request
        if (m.type === NLMSG_ERROR) {
          const err = decodeError(m, operation);
          if (err) throw err;
          return out;
        }
        if (m.type !== NLMSG_NOOP) out.push({ ...m, payload: Buffer.from(m.payload) });
      }
    }
  }

  /**
   * Several messages in one datagram (an nfnetlink batch: BEGIN, requests, END), applied by the kernel
   * as one transaction. Waits for the ACK of every message that asked for one; the first error throws
   * (the kernel then aborts the whole batch, so nothing of it is applied). Replies echoed before the
   * ACKs (a GET's answer) are returned.
   */
  execBatch(ws: MessageWriter[]): NetlinkMessage[] {
    if (this.fd < 0) throw new Error('netlink socket is closed');
    const pending = new Map<number, string>();
    const parts: Buffer[] = [];
    for (const w of ws) {
      const seq = this.seq = (this.seq + 1) >>> 0;
      parts.push(Buffer.from(w.finish(seq)));
      if (w.flags & NLM_F_ACK) pending.set(seq, opName(w));
    }
    const msg = Buffer.concat(parts);
    sys.send(this.fd, msg, msg.length);
    const out: NetlinkMessage[] = [];
    while (pending.size) {
      for (const m of this.receive('nfnetlink batch')) {
        const operation = pending.get(m.seq);
        if (!operation) continue;
        if (m.type === NLMSG_ERROR) {
          const err = decodeError(m, operation);
          if (err) throw err;
          pending.delete(m.seq);
        } else if (m.type !== NLMSG_NOOP) out.push({ ...m, payload: Buffer.from(m.payload) });
      }
    }
    return out;
  }

  /**
   * A dump (NLM_F_DUMP). If the kernel flags the dump as interrupted (the table changed meanwhile)
   * it is restarted, so callers always see a consistent snapshot.
   */
  dump(build: () => MessageWriter): NetlinkMessage[] {
    for (let attempt = 0; ; attempt++) {
      const w = build();
      const operation = `${opName(w)} dump`;
      if ((w.flags & NLM_F_DUMP) !== NLM_F_DUMP) throw new Error(`${operation}: dump needs NLM_F_DUMP`);
      const seq = this.send(w);
      const out: NetlinkMessage[] = [];
      let interrupted = false;
      let done = false;
      while (!done) {
        for (const m of this.receive(operation)) {
          if (m.seq !== seq) continue;
          if (m.flags & NLM_F_DUMP_INTR) interrupted = true;
          if (m.type === NLMSG_DONE) {
            const err = m.payload.length >= 4 ? decodeError(m, operation) : null;
            if (err) throw err;
            done = true;
            break;
          }
          if (m.type === NLMSG_ERROR) {
            const err = decodeError(m, operation);
            if (err) throw err;
            done = true;
            break;
          }
          if (m.type === NLMSG_OVERRUN) throw new Error(`${operation}: kernel reported overrun`);
          if (m.type !== NLMSG_NOOP) out.push({ ...m, payload: Buffer.from(m.payload) });
          if (!(m.flags & NLM_F_MULTI)) { done = true; break; }
        }
      }
      if (!interrupted || attempt >= DUMP_RETRIES) return out;
    }
  }
}
