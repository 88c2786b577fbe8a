
// Ethernet hardware addresses. Randomness comes from the global Web Crypto, so this module imports
// nothing: it is loaded on every plugin exec.

function hexDigit(c: number): number {
  if (c >= 48 && c <= 57) return c - 48;
  c |= 0x20; // ASCII lower case; non-letters stay out of range below
  return c >= 97 && c <= 102 ? c - 87 : -1;
}

/** "aa:bb:cc:dd:ee:ff" or "AA-BB-..."; one separator throughout, exactly six two-digit bytes. */
export function parseMAC(s: string): Uint8Array | null {
  if (typeof s !== 'string' || s.length !== 17) return null;
  const sep = s.charCodeAt(2);
  if (sep !== 58 /* : */ && sep !== 45 /* - */) return null;
  const out = new Uint8Array(6);
  for (let i = 0; i < 6; i++) {
    const at = 3 * i;
    if (i > 0 && s.charCodeAt(at - 1) !== sep) return null;
    const hi = hexDigit(s.charCodeAt(at));
    const lo = hexDigit(s.charCodeAt(at + 1));
    if (hi < 0 || lo < 0) return null;
    out[i] = (hi << 4) | lo;
  }
  return out;
}

/** Lower-case colon form, any length (InfiniBand hardware addresses have 20 bytes). */
export function formatMAC(b: Uint8Array): string {
  let s = '';
  for (let i = 0; i < b.length; i++) s += (i ? ':' : '') + (b[i] < 16 ? '0' : '') + b[i].toString(16);
  return s;
}

/** Six bytes, not group (multicast/broadcast), not all zero: usable as an interface address. */
export function isValidUnicastMAC(b: Uint8Array): boolean {
  if (b.length !== 6 || (b[0] & 1) !== 0) return false;
  for (let i = 0; i < 6; i++) if (b[i] !== 0) return true;
  return false;
}

/** Random, locally administered (so it cannot collide with a vendor's), unicast. */
export function randomLocalMAC(): Uint8Array {
  // Web Crypto is a global in Node and Bun: no module to load (node:crypto costs ~3.5 ms per exec).
  const b = crypto.getRandomValues(new Uint8Array(6));
  b[0] = (b[0] & 0xfe) | 0x02;
  return b;
}
