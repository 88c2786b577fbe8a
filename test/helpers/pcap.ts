import { readFileSync } from 'node:fs';

// A tiny reader for the lab's captures: classic libpcap, Ethernet, IPv4/IPv6, TCP. It yields each TCP
// direction's payload segments in sequence order with retransmissions dropped, so tests can feed the
// BGP framer the segments exactly as the wire cut them.

export interface TcpStream {
  src: string;
  dst: string;
  /** Payload segments in sequence order (no empty ones, no retransmits). */
  segments: Buffer[];
}

function ipText(b: Buffer): string {
  if (b.length === 4) return Array.from(b).join('.');
  const groups = [];
  for (let i = 0; i < 16; i += 2) groups.push(b.readUInt16BE(i).toString(16));
  return groups.join(':');
}

export function readTcpStreams(path: string): TcpStream[] {
  const data = readFileSync(path);
  const magic = data.readUInt32LE(0);
  const le = magic === 0xa1b2c3d4 || magic === 0xa1b23c4d;
  if (!le && data.readUInt32BE(0) !== 0xa1b2c3d4 && data.readUInt32BE(0) !== 0xa1b23c4d) throw new Error(`${path}: not a pcap file`);
  const linkType = le ? data.readUInt32LE(20) : data.readUInt32BE(20);
  if (linkType !== 1) throw new Error(`${path}: link type ${linkType}, only Ethernet (1) is read`);
  const flows = new Map<string, { src: string; dst: string; next?: number; segs: Buffer[] }>();
  for (let off = 24; off + 16 <= data.length;) {
    const incl = le ? data.readUInt32LE(off + 8) : data.readUInt32BE(off + 8);
    const frame = data.subarray(off + 16, off + 16 + incl);
    off += 16 + incl;
    const ethType = frame.readUInt16BE(12);
    const p = frame.subarray(14);
    let src: string;
    let dst: string;
    let seg: Buffer;
    if (ethType === 0x0800) {
      if (p[9] !== 6) continue;
      src = ipText(p.subarray(12, 16));
      dst = ipText(p.subarray(16, 20));
      seg = p.subarray((p[0] & 0x0f) * 4, p.readUInt16BE(2));
    } else if (ethType === 0x86dd) {
      if (p[6] !== 6) continue;
      src = ipText(p.subarray(8, 24));
      dst = ipText(p.subarray(24, 40));
      seg = p.subarray(40, 40 + p.readUInt16BE(4));
    } else continue;
    const from = `${src}:${seg.readUInt16BE(0)}`;
    const to = `${dst}:${seg.readUInt16BE(2)}`;
    const seq = seg.readUInt32BE(4);
    const flags = seg[13];
    const payload = seg.subarray((seg[12] >> 4) * 4);
    const key = `${from}>${to}`;
    let f = flows.get(key);
    if (!f) flows.set(key, f = { src: from, dst: to, segs: [] });
    if (flags & 0x02) { f.next = (seq + 1) >>> 0; continue; } // SYN takes one sequence number
    if (!payload.length || f.next === undefined) continue;
    // In-order capture on one veth: a segment is new, a retransmission, or overlaps the end.
    const skip = (f.next - seq) | 0;
    if (skip >= payload.length) continue;
    if (skip < 0) throw new Error(`${path}: gap in ${key} (sequence ${seq}, expected ${f.next})`);
    f.segs.push(Buffer.from(payload.subarray(skip)));
    f.next = (seq + payload.length) >>> 0;
  }
  return [...flows.values()].filter((f) => f.segs.length).map((f) => ({ src: f.src, dst: f.dst, segments: f.segs }));
}
