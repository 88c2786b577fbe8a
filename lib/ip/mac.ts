
export function parseMAC(s: string): Uint8Array | null {
  if (typeof s !== 'string') return null;
  const parts = s.split(/[:-]/);
  if (parts.length !== 6) return null;
  const out = new Uint8Array(6);
  for (let i = 0; i < 6; i++) {
    if (!/^[0-9a-fA-F]{2}$/.test(parts[i])) return null;
    out[i] = parseInt(parts[i], 16);
  }
  return out;
}

/** Lower-case colon form, any length (InfiniBand hardware addresses have 20 bytes). */
export function formatMAC(b: Uint8Array): string {
  return Array.from(b, (x) => x.toString(16).padStart(2, '0')).join(':');
}

export function isValidUnicastMAC(b: Uint8Array): boolean {
  return b.length === 6 && (b[0] & 1) === 0 && b.some((x) => x !== 0);
}

/** Random, locally administered, unicast. */
export function randomLocalMAC(): Uint8Array {
  const b = crypto.getRandomValues(new Uint8Array(6));
  b[0] = (b[0] & 0xfe) | 0x02;
  return b;
}
