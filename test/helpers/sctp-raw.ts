import { inNetns } from '../../lib/netns/netns.js';
import { sys } from '../../lib/sys/index.js';

// SCTP without SCTP sockets: kernels built or booted without the sctp module (this one) still forward,
// track and NAT SCTP, so a test sends a hand-made INIT from a raw socket and watches for it with another.
// IPv4 only: a raw IPv4 socket hands back the IP header, which shows where DNAT sent the packet.

const AF_INET = 2;
const SOCK_RAW = 3;
const IPPROTO_SCTP = 132;

function crc32c(b: Buffer): number {
  let c = 0xffffffff;
  for (const byte of b) {
    c ^= byte;
    for (let k = 0; k < 8; k++) c = c & 1 ? (c >>> 1) ^ 0x82f63b78 : c >>> 1;
  }
  return (c ^ 0xffffffff) >>> 0;
}

/** An SCTP INIT (common header + INIT chunk) from srcPort to dstPort, checksummed as the kernel checks it. */
export function sctpInit(srcPort: number, dstPort: number): Buffer {
  const p = Buffer.alloc(32);
  p.writeUInt16BE(srcPort, 0);
  p.writeUInt16BE(dstPort, 2);
  // verification tag 0 for an INIT; checksum at 8, filled below
  p.writeUInt8(1, 12); // chunk type INIT
  p.writeUInt16BE(20, 14); // chunk length
  p.writeUInt32BE(0x01020304, 16); // initiate tag
  p.writeUInt32BE(65536, 20); // a_rwnd
  p.writeUInt16BE(1, 24); // outbound streams
  p.writeUInt16BE(1, 26); // inbound streams
  p.writeUInt32BE(1, 28); // initial TSN
  p.writeUInt32LE(crc32c(p), 8); // CRC32c goes in little-endian byte order
  return p;
}

const sockaddr = (ip: string) => {
  const a = new Uint8Array(16);
  new DataView(a.buffer).setUint16(0, AF_INET, true);
  a.set(ip.split('.').map(Number), 4);
  return a;
};

/** A raw SCTP socket opened in `ns` (it stays there); receives every SCTP packet that reaches the namespace. */
export function sctpListener(ns: string): { next(timeoutMs: number): { dst: string; dport: number } | null; close(): void } {
  const fd = inNetns(ns, () => sys.socket(AF_INET, SOCK_RAW, IPPROTO_SCTP));
  const buf = new Uint8Array(2048);
  return {
    next(timeoutMs) {
      if (!sys.waitReadable(fd, timeoutMs)) return null;
      const n = sys.recv(fd, buf, 0);
      const b = Buffer.from(buf.subarray(0, n));
      const ihl = (b[0] & 0x0f) * 4;
      return { dst: [...b.subarray(16, 20)].join('.'), dport: b.readUInt16BE(ihl + 2) };
    },
    close() { sys.close(fd); },
  };
}

/** Sends one SCTP INIT from `ns` to ip:port. */
export function sendSctpInit(ns: string, ip: string, port: number, srcPort = 40000): void {
  inNetns(ns, () => {
    const fd = sys.socket(AF_INET, SOCK_RAW, IPPROTO_SCTP);
    try {
      sys.connect(fd, sockaddr(ip));
      const p = sctpInit(srcPort, port);
      sys.send(fd, p, p.length);
    } finally { sys.close(fd); }
  });
}
