import { formatIP, parseIP, type Family } from '../ip/addr.js';
import { hostKey, wildKey } from './elements.js';
import type { Protocol } from './mapping.js';

// Each attachment that published ports has one element in the `owners` set: its key a hash of the
// owner, its comment the owner and the map keys it holds. DEL then looks up its own elements by key
// (a few hash probes) instead of dumping every map, and an attachment that published nothing costs
// one probe. A list too long for a comment (nftables keeps 256 bytes) is recorded as "*": that DEL scans.

/** One element of a map, as the ledger names it: enough to rebuild its key. */
export interface LedgerEntry { family: Family; protocol: Protocol; hostPort: number; hostIP?: string }

const COMMENT_MAX = 250;

const FNV128_OFFSET = 0x6c62272e07bb014262b821756295c58dn;
const FNV128_PRIME = 0x0000000001000000000000000000013bn;
const MASK128 = (1n << 128n) - 1n;

/**
 * The owners set's key: the 128-bit FNV-1a hash of the owner text (the set is typed ipv6_addr for 16
 * opaque bytes). Not a cryptographic hash: loading node:crypto cost every ADD and DEL with ports ~4 ms,
 * and owner texts (network, container ID, interface) come from the runtime, not from containers. Two
 * owners with one key would still never remove each other's mappings: DEL checks each element's owner.
 */
export function ownerKey(ownerText: string): Buffer {
  let h = FNV128_OFFSET;
  for (const b of Buffer.from(ownerText)) h = ((h ^ BigInt(b)) * FNV128_PRIME) & MASK128;
  return Buffer.from(h.toString(16).padStart(32, '0'), 'hex');
}

const entryText = (e: LedgerEntry) => `${e.hostIP ? `h${e.family}/${e.hostIP}` : `w${e.family}`}/${e.protocol}/${e.hostPort}`;

/** "<owner>|<entry> <entry> ..." or "<owner>|*" when it does not fit. */
export function ledgerComment(ownerText: string, entries: LedgerEntry[]): string {
  const full = `${ownerText}|${entries.map(entryText).join(' ')}`;
  return full.length <= COMMENT_MAX ? full : `${ownerText}|*`;
}

/** The entries of a ledger comment; null for "*" or anything unreadable (the caller scans instead). */
export function ledgerEntries(comment: string | undefined): LedgerEntry[] | null {
  const list = comment?.split('|')[1];
  if (list === undefined || list === '*') return null;
  const out: LedgerEntry[] = [];
  for (const t of list.split(' ').filter(Boolean)) {
    const m = /^(w|h)(4|6)\/(?:([^/]+)\/)?(tcp|udp|sctp)\/(\d+)$/.exec(t);
    if (!m || (m[1] === 'h') !== (m[3] !== undefined)) return null;
    const e: LedgerEntry = { family: m[2] === '4' ? 4 : 6, protocol: m[4] as Protocol, hostPort: Number(m[5]) };
    if (m[3] !== undefined) {
      const ip = parseIP(m[3]);
      if (!ip) return null;
      e.hostIP = formatIP(ip);
    }
    out.push(e);
  }
  return out;
}

/** The map and key of a ledger entry. */
export function entryElement(e: LedgerEntry): { set: string; key: Buffer } {
  if (!e.hostIP) return { set: `wild${e.family}`, key: wildKey(e.protocol, e.hostPort) };
  return { set: `host${e.family}`, key: hostKey(parseIP(e.hostIP)!, e.protocol, e.hostPort) };
}
