// Address math for the per-container path. The `ip-address` package does this too, but importing
// it costs 3-7 ms per exec (measured in the compiled binary); the tests use it as an oracle instead.

export type Family = 4 | 6;
/** bytes is 4 bytes for IPv4, 16 for IPv6. Treat as immutable. */
export interface IP { readonly family: Family; readonly bytes: Uint8Array }
/** ip as written: host bits may be set ("10.0.0.5/24" is an interface address). */
export interface CIDR { readonly ip: IP; readonly prefix: number }

const bitsOf = (f: Family) => (f === 4 ? 32 : 128);

function parseIPv4(s: string): Uint8Array | null {
  const parts = s.split('.');
  if (parts.length !== 4) return null;
  const out = new Uint8Array(4);
  for (let i = 0; i < 4; i++) {
    const p = parts[i];
    if (p.length === 0 || p.length > 3 || (p.length > 1 && p[0] === '0')) return null;
    let n = 0;
    for (let j = 0; j < p.length; j++) {
      const c = p.charCodeAt(j) - 48;
      if (c < 0 || c > 9) return null;
      n = n * 10 + c;
    }
    if (n > 255) return null;
    out[i] = n;
  }
  return out;
}

function parseHexGroup(g: string): number {
  if (g.length === 0 || g.length > 4) return -1;
  let n = 0;
  for (let i = 0; i < g.length; i++) {
    const c = g.charCodeAt(i);
    const d = c >= 48 && c <= 57 ? c - 48 : c >= 97 && c <= 102 ? c - 87 : c >= 65 && c <= 70 ? c - 55 : -1;
    if (d < 0) return -1;
    n = n * 16 + d;
  }
  return n;
}

function parseIPv6(s: string): Uint8Array | null {
  if (s.includes('%')) return null; // zones never belong in CNI config
  const halves = s.split('::');
  if (halves.length > 2) return null;
  const groups = (h: string): number[] | null => {
    if (h === '') return [];
    const out: number[] = [];
    const parts = h.split(':');
    for (let i = 0; i < parts.length; i++) {
      const p = parts[i];
      if (i === parts.length - 1 && p.includes('.')) {
        const v4 = parseIPv4(p);
        if (!v4) return null;
        out.push((v4[0] << 8) | v4[1], (v4[2] << 8) | v4[3]);
        continue;
      }
      const n = parseHexGroup(p);
      if (n < 0) return null;
      out.push(n);
    }
    return out;
  };
  const head = groups(halves[0]);
  const tail = halves.length === 2 ? groups(halves[1]) : [];
  if (!head || !tail) return null;
  // An embedded IPv4 address may only end the address.
  if (halves.length === 2 && halves[0].includes('.')) return null;
  const total = head.length + tail.length;
  if (halves.length === 1 ? total !== 8 : total > 7) return null;
  const all = [...head, ...new Array(8 - total).fill(0), ...tail];
  const out = new Uint8Array(16);
  for (let i = 0; i < 8; i++) { out[2 * i] = all[i] >> 8; out[2 * i + 1] = all[i] & 0xff; }
  return out;
}

export function parseIP(s: string): IP | null {
  if (typeof s !== 'string') return null;
  if (s.includes(':')) {
    const b = parseIPv6(s);
    return b ? { family: 6, bytes: b } : null;
  }
  const b = parseIPv4(s);
  return b ? { family: 4, bytes: b } : null;
}

export function ipFromBytes(b: Uint8Array): IP {
  if (b.length === 4) return { family: 4, bytes: Uint8Array.from(b) };
  if (b.length === 16) return { family: 6, bytes: Uint8Array.from(b) };
  throw new RangeError(`an IP address has 4 or 16 bytes, not ${b.length}`);
}

export function isIPv4Mapped(ip: IP): boolean {
  if (ip.family !== 6) return false;
  for (let i = 0; i < 10; i++) if (ip.bytes[i] !== 0) return false;
  return ip.bytes[10] === 0xff && ip.bytes[11] === 0xff;
}

/** IPv4 dotted quad; IPv6 in RFC 5952 form (mixed notation only for IPv4-mapped, as Go prints). */
export function formatIP(ip: IP): string {
  const b = ip.bytes;
  if (ip.family === 4) return `${b[0]}.${b[1]}.${b[2]}.${b[3]}`;
  if (isIPv4Mapped(ip)) return `::ffff:${b[12]}.${b[13]}.${b[14]}.${b[15]}`;
  const g: number[] = [];
  for (let i = 0; i < 8; i++) g.push((b[2 * i] << 8) | b[2 * i + 1]);
  // Longest run of at least two zero groups, the first one on a tie.
  let bestStart = -1;
  let bestLen = 1;
  for (let i = 0; i < 8;) {
    if (g[i] !== 0) { i++; continue; }
    let j = i;
    while (j < 8 && g[j] === 0) j++;
    if (j - i > bestLen) { bestStart = i; bestLen = j - i; }
    i = j;
  }
  const hex = (xs: number[]) => xs.map((x) => x.toString(16)).join(':');
  if (bestStart < 0) return hex(g);
  return `${hex(g.slice(0, bestStart))}::${hex(g.slice(bestStart + bestLen))}`;
}

export function ipEqual(a: IP, b: IP): boolean {
  if (a.family !== b.family) return false;
  for (let i = 0; i < a.bytes.length; i++) if (a.bytes[i] !== b.bytes[i]) return false;
  return true;
}

export function compareIP(a: IP, b: IP): number {
  if (a.family !== b.family) return a.family - b.family;
  for (let i = 0; i < a.bytes.length; i++) if (a.bytes[i] !== b.bytes[i]) return a.bytes[i] - b.bytes[i];
  return 0;
}

export function ipToBigInt(ip: IP): bigint {
  let n = 0n;
  for (const x of ip.bytes) n = (n << 8n) | BigInt(x);
  return n;
}

export function bigIntToIP(n: bigint, family: Family): IP {
  const len = family === 4 ? 4 : 16;
  if (n < 0n || n >> BigInt(len * 8) !== 0n) throw new RangeError(`${n} does not fit an IPv${family} address`);
  const b = new Uint8Array(len);
  for (let i = len - 1; i >= 0; i--) { b[i] = Number(n & 0xffn); n >>= 8n; }
  return { family, bytes: b };
}

export function addToIP(ip: IP, n: bigint | number): IP | null {
  const v = ipToBigInt(ip) + BigInt(n);
  if (v < 0n || v >> BigInt(bitsOf(ip.family)) !== 0n) return null;
  return bigIntToIP(v, ip.family);
}

export function parseCIDR(s: string): CIDR | null {
  if (typeof s !== 'string') return null;
  const slash = s.indexOf('/');
  if (slash < 0) return null;
  const ip = parseIP(s.slice(0, slash));
  const p = s.slice(slash + 1);
  if (!ip || !/^(0|[1-9][0-9]{0,2})$/.test(p)) return null;
  const prefix = Number(p);
  return prefix <= bitsOf(ip.family) ? { ip, prefix } : null;
}

export function formatCIDR(c: CIDR): string {
  return `${formatIP(c.ip)}/${c.prefix}`;
}

export function maskBytes(family: Family, prefix: number): Uint8Array {
  const b = new Uint8Array(family === 4 ? 4 : 16);
  for (let i = 0; i < b.length; i++) {
    const bits = Math.max(0, Math.min(8, prefix - 8 * i));
    b[i] = bits === 0 ? 0 : (0xff << (8 - bits)) & 0xff;
  }
  return b;
}

export function prefixFromMask(mask: Uint8Array): number | null {
  let prefix = 0;
  let ended = false;
  for (const x of mask) {
    for (let bit = 7; bit >= 0; bit--) {
      const set = (x >> bit) & 1;
      if (set && ended) return null;
      if (set) prefix++; else ended = true;
    }
  }
  return prefix;
}

export function networkOf(c: CIDR): IP {
  const m = maskBytes(c.ip.family, c.prefix);
  return { family: c.ip.family, bytes: c.ip.bytes.map((x, i) => x & m[i]) };
}

export function lastOf(c: CIDR): IP {
  const m = maskBytes(c.ip.family, c.prefix);
  return { family: c.ip.family, bytes: c.ip.bytes.map((x, i) => (x | ~m[i]) & 0xff) };
}

export function networkCIDR(c: CIDR): CIDR {
  return { ip: networkOf(c), prefix: c.prefix };
}

export function hostBitsZero(c: CIDR): boolean {
  return ipEqual(c.ip, networkOf(c));
}

export function cidrContains(c: CIDR, ip: IP): boolean {
  if (c.ip.family !== ip.family) return false;
  const m = maskBytes(c.ip.family, c.prefix);
  for (let i = 0; i < m.length; i++) if ((c.ip.bytes[i] & m[i]) !== (ip.bytes[i] & m[i])) return false;
  return true;
}

export function cidrsOverlap(a: CIDR, b: CIDR): boolean {
  return cidrContains(a, b.ip) || cidrContains(b, a.ip);
}

export function cidrSize(c: CIDR): bigint {
  return 1n << BigInt(bitsOf(c.ip.family) - c.prefix);
}

export function toIPv4(ip: IP): IP | null {
  if (ip.family === 4) return ip;
  return isIPv4Mapped(ip) ? { family: 4, bytes: ip.bytes.slice(12) } : null;
}

export function isLinkLocal(ip: IP): boolean {
  return ip.family === 4 ? ip.bytes[0] === 169 && ip.bytes[1] === 254 : ip.bytes[0] === 0xfe && (ip.bytes[1] & 0xc0) === 0x80;
}

export function isUnspecified(ip: IP): boolean {
  return ip.bytes.every((x) => x === 0);
}
