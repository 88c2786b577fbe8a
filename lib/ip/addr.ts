// Address math for the per-container path. The `ip-address` package does this too, but importing
// it costs 3-7 ms per exec (measured in the compiled binary); the tests use it as an oracle instead.
// Parsers scan characters rather than split/regex: they run on every address in every CNI config,
// and a scanner allocates nothing but the result.

export type Family = 4 | 6;
/** bytes is 4 bytes for IPv4, 16 for IPv6. Treat as immutable. */
export interface IP { readonly family: Family; readonly bytes: Uint8Array }
/** ip as written: host bits may be set ("10.0.0.5/24" is an interface address). */
export interface CIDR { readonly ip: IP; readonly prefix: number }

const bitsOf = (f: Family) => (f === 4 ? 32 : 128);

// A hand-built CIDR with a prefix outside its family would otherwise give quietly wrong masks.
function checkedPrefix(family: Family, prefix: number): number {
  if (!Number.isInteger(prefix) || prefix < 0 || prefix > bitsOf(family)) {
    throw new RangeError(`prefix ${prefix} is out of range for IPv${family}`);
  }
  return prefix;
}

/** The mask's byte i for a prefix: 0xff, 0, or the one partial byte. */
function maskByte(prefix: number, i: number): number {
  const bits = prefix - 8 * i;
  return bits >= 8 ? 0xff : bits <= 0 ? 0 : (0xff00 >> bits) & 0xff;
}

/** Dotted quad in s[start..] into out[off..off+4]. Leading zeros are refused: "010" means 8 to inet_aton. */
function parseIPv4Into(s: string, start: number, out: Uint8Array, off: number): boolean {
  let part = 0;
  let v = 0;
  let digits = 0;
  for (let i = start; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c === 46 /* . */) {
      if (digits === 0 || part === 3) return false;
      out[off + part++] = v;
      v = 0;
      digits = 0;
      continue;
    }
    const d = c - 48;
    if (d < 0 || d > 9 || (digits === 1 && v === 0)) return false;
    v = v * 10 + d;
    if (v > 255) return false;
    digits++;
  }
  if (digits === 0 || part !== 3) return false;
  out[off + 3] = v;
  return true;
}

function hexDigit(c: number): number {
  if (c >= 48 && c <= 57) return c - 48;
  c |= 0x20; // ASCII lower case; non-letters stay out of range below
  return c >= 97 && c <= 102 ? c - 87 : -1;
}

function parseIPv6(s: string): Uint8Array | null {
  const n = s.length;
  if (n < 2) return null;
  const out = new Uint8Array(16);
  let g = 0; // groups written so far
  let gap = -1; // group index where "::" stands
  let i = 0;
  if (s.charCodeAt(0) === 58 /* : */) {
    if (s.charCodeAt(1) !== 58) return null;
    gap = 0;
    i = 2;
  }
  while (i < n) {
    if (g === 8) return null;
    let v = 0;
    let j = i;
    // Reading a fifth digit lets "12345" be refused rather than read as "1234" plus junk.
    for (let d; j < n && j - i < 5 && (d = hexDigit(s.charCodeAt(j))) >= 0; j++) v = v * 16 + d;
    if (j === i) return null;
    if (j < n && s.charCodeAt(j) === 46 /* . */) {
      // An IPv4 tail fills the last two groups and must end the address.
      if (g > 6 || !parseIPv4Into(s, i, out, 2 * g)) return null;
      g += 2;
      break;
    }
    if (j - i > 4) return null;
    out[2 * g] = v >> 8;
    out[2 * g + 1] = v & 0xff;
    g++;
    if (j === n) break;
    if (s.charCodeAt(j) !== 58) return null; // also refuses zones ("%eth0"): never valid in CNI config
    if (++j === n) return null; // trailing single ':'
    if (s.charCodeAt(j) === 58) {
      if (gap >= 0) return null;
      gap = g;
      j++;
    }
    i = j;
  }
  if (gap < 0) return g === 8 ? out : null;
  if (g === 8) return null; // "::" stands for at least one zero group (RFC 4291 2.2)
  const tail = 2 * (g - gap);
  out.copyWithin(16 - tail, 2 * gap, 2 * g);
  out.fill(0, 2 * gap, 16 - tail);
  return out;
}

/** Strict: dotted quad, or IPv6 text. An IPv4-mapped IPv6 address stays family 6. */
export function parseIP(s: string): IP | null {
  if (typeof s !== 'string') return null;
  if (s.indexOf(':') >= 0) {
    const b = parseIPv6(s);
    return b ? { family: 6, bytes: b } : null;
  }
  const b = new Uint8Array(4);
  return parseIPv4Into(s, 0, b, 0) ? { family: 4, bytes: b } : null;
}

export function ipFromBytes(b: Uint8Array): IP {
  if (b.length === 4) return { family: 4, bytes: Uint8Array.from(b) };
  if (b.length === 16) return { family: 6, bytes: Uint8Array.from(b) };
  throw new RangeError(`an IP address has 4 or 16 bytes, not ${b.length}`);
}

export function isIPv4Mapped(ip: IP): boolean {
  if (ip.family !== 6) return false;
  const b = ip.bytes;
  for (let i = 0; i < 10; i++) if (b[i] !== 0) return false;
  return b[10] === 0xff && b[11] === 0xff;
}

/**
 * IPv4 dotted quad; IPv6 in RFC 5952 form. Mixed notation only for ::ffff:0:0/96, as Go prints
 * them, so text we hand to runtimes matches what Go-based CNI plugins would have produced.
 */
export function formatIP(ip: IP): string {
  const b = ip.bytes;
  if (ip.family === 4) return `${b[0]}.${b[1]}.${b[2]}.${b[3]}`;
  if (isIPv4Mapped(ip)) return `::ffff:${b[12]}.${b[13]}.${b[14]}.${b[15]}`;
  // Longest run of at least two zero groups, the first one on a tie (RFC 5952 4.2).
  let bestStart = -1;
  let bestLen = 1;
  for (let i = 0; i < 8;) {
    if (b[2 * i] !== 0 || b[2 * i + 1] !== 0) { i++; continue; }
    let j = i + 1;
    while (j < 8 && b[2 * j] === 0 && b[2 * j + 1] === 0) j++;
    if (j - i > bestLen) { bestStart = i; bestLen = j - i; }
    i = j;
  }
  let s = '';
  for (let i = 0; i < 8; i++) {
    if (i === bestStart) {
      s += '::';
      i += bestLen - 1;
      continue;
    }
    if (s !== '' && !s.endsWith(':')) s += ':';
    s += ((b[2 * i] << 8) | b[2 * i + 1]).toString(16);
  }
  return s;
}

export function ipEqual(a: IP, b: IP): boolean {
  if (a.family !== b.family) return false;
  for (let i = 0; i < a.bytes.length; i++) if (a.bytes[i] !== b.bytes[i]) return false;
  return true;
}

/** IPv4 sorts before IPv6; within a family, numerically. */
export function compareIP(a: IP, b: IP): number {
  if (a.family !== b.family) return a.family - b.family;
  for (let i = 0; i < a.bytes.length; i++) if (a.bytes[i] !== b.bytes[i]) return a.bytes[i] - b.bytes[i];
  return 0;
}

export function ipToBigInt(ip: IP): bigint {
  const b = ip.bytes;
  // Two 64-bit reads instead of sixteen bigint shifts.
  const dv = new DataView(b.buffer, b.byteOffset, b.byteLength);
  if (ip.family === 4) return BigInt(dv.getUint32(0));
  return (dv.getBigUint64(0) << 64n) | dv.getBigUint64(8);
}

/** Throws RangeError unless 0 <= n < 2^bits. */
export function bigIntToIP(n: bigint, family: Family): IP {
  const bits = bitsOf(family);
  if (n < 0n || n >> BigInt(bits) !== 0n) throw new RangeError(`${n} does not fit an IPv${family} address`);
  const b = new Uint8Array(bits / 8);
  const dv = new DataView(b.buffer);
  if (family === 4) dv.setUint32(0, Number(n));
  else { dv.setBigUint64(0, n >> 64n); dv.setBigUint64(8, BigInt.asUintN(64, n)); }
  return { family, bytes: b };
}

/**
 * ip + n, or null when the result leaves the family's address space (no wrap-around: an
 * allocator walking past the end must notice). A non-integer number n throws RangeError.
 */
export function addToIP(ip: IP, n: bigint | number): IP | null {
  const v = ipToBigInt(ip) + BigInt(n);
  if (v < 0n || v >> BigInt(bitsOf(ip.family)) !== 0n) return null;
  return bigIntToIP(v, ip.family);
}

/** "addr/prefix"; the prefix is decimal, in range for the family, with no leading zeros or sign. */
export function parseCIDR(s: string): CIDR | null {
  if (typeof s !== 'string') return null;
  const slash = s.indexOf('/');
  if (slash < 0) return null;
  const ip = parseIP(s.slice(0, slash));
  if (!ip) return null;
  const len = s.length - slash - 1;
  if (len < 1 || len > 3 || (len > 1 && s.charCodeAt(slash + 1) === 48)) return null;
  let prefix = 0;
  for (let i = slash + 1; i < s.length; i++) {
    const d = s.charCodeAt(i) - 48;
    if (d < 0 || d > 9) return null;
    prefix = prefix * 10 + d;
  }
  return prefix <= bitsOf(ip.family) ? { ip, prefix } : null;
}

export function formatCIDR(c: CIDR): string {
  return `${formatIP(c.ip)}/${c.prefix}`;
}

/** Throws RangeError for a prefix outside 0..32 / 0..128. */
export function maskBytes(family: Family, prefix: number): Uint8Array {
  checkedPrefix(family, prefix);
  const b = new Uint8Array(family === 4 ? 4 : 16);
  for (let i = 0; i < b.length; i++) b[i] = maskByte(prefix, i);
  return b;
}

/** Leading one bits of a mask of any length; null unless the ones are contiguous from the top. */
export function prefixFromMask(mask: Uint8Array): number | null {
  let i = 0;
  while (i < mask.length && mask[i] === 0xff) i++;
  if (i === mask.length) return 8 * i;
  const x = mask[i];
  // A contiguous partial byte is 1s then 0s: its complement plus one is a power of two.
  const inv = ~x & 0xff;
  if ((inv & (inv + 1)) !== 0) return null;
  for (let j = i + 1; j < mask.length; j++) if (mask[j] !== 0) return null;
  return 8 * i + (8 - (32 - Math.clz32(inv)));
}

export function networkOf(c: CIDR): IP {
  const p = checkedPrefix(c.ip.family, c.prefix);
  const b = Uint8Array.from(c.ip.bytes);
  for (let i = 0; i < b.length; i++) b[i] &= maskByte(p, i);
  return { family: c.ip.family, bytes: b };
}

/** Host bits set: the broadcast address for IPv4. */
export function lastOf(c: CIDR): IP {
  const p = checkedPrefix(c.ip.family, c.prefix);
  const b = Uint8Array.from(c.ip.bytes);
  for (let i = 0; i < b.length; i++) b[i] |= ~maskByte(p, i) & 0xff;
  return { family: c.ip.family, bytes: b };
}

export function networkCIDR(c: CIDR): CIDR {
  return { ip: networkOf(c), prefix: c.prefix };
}

export function hostBitsZero(c: CIDR): boolean {
  const p = checkedPrefix(c.ip.family, c.prefix);
  const b = c.ip.bytes;
  for (let i = 0; i < b.length; i++) if ((b[i] & ~maskByte(p, i) & 0xff) !== 0) return false;
  return true;
}

/** False on a family mismatch: an IPv4-mapped address is not inside an IPv4 range here. */
export function cidrContains(c: CIDR, ip: IP): boolean {
  if (c.ip.family !== ip.family) return false;
  const p = checkedPrefix(c.ip.family, c.prefix);
  const a = c.ip.bytes;
  const b = ip.bytes;
  for (let i = 0; i < a.length; i++) {
    const m = maskByte(p, i);
    if (m === 0) return true;
    if ((a[i] & m) !== (b[i] & m)) return false;
  }
  return true;
}

export function cidrsOverlap(a: CIDR, b: CIDR): boolean {
  // Prefix blocks nest or are disjoint, so they overlap iff the wider one holds the narrower one.
  return a.prefix <= b.prefix ? cidrContains(a, b.ip) : cidrContains(b, a.ip);
}

export function cidrSize(c: CIDR): bigint {
  return 1n << BigInt(bitsOf(c.ip.family) - checkedPrefix(c.ip.family, c.prefix));
}

/** IPv4 as is, IPv4-mapped IPv6 as its IPv4 address, anything else null. */
export function toIPv4(ip: IP): IP | null {
  if (ip.family === 4) return ip;
  return isIPv4Mapped(ip) ? { family: 4, bytes: ip.bytes.slice(12) } : null;
}

/** Link-local unicast: 169.254.0.0/16, fe80::/10. */
export function isLinkLocal(ip: IP): boolean {
  const b = ip.bytes;
  return ip.family === 4 ? b[0] === 169 && b[1] === 254 : b[0] === 0xfe && (b[1] & 0xc0) === 0x80;
}

/** 0.0.0.0 or ::. */
export function isUnspecified(ip: IP): boolean {
  for (let i = 0; i < ip.bytes.length; i++) if (ip.bytes[i] !== 0) return false;
  return true;
}
