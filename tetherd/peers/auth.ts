import { readFileSync, statSync } from 'node:fs';
import { nodeCrypto } from '../../lib/builtin.js';
import { decodeBody, encodeBody, HEADER_MIN, MAC_LEN, MAX_DATAGRAM, WireError, type Frame } from './wire.js';

/**
 * Every datagram is signed with HMAC-SHA256 under the network's shared key; the MAC is checked over
 * the raw bytes before anything is decoded, so a sender without the key gets no parser time at all.
 */
export const MIN_KEY_BYTES = 16;

/** Why a datagram was dropped: each is a /metrics counter. */
export type Drop = 'malformed' | 'forged' | 'replayed' | 'stale';

export class KeyFileError extends Error {
  constructor(msg: string) { super(msg); this.name = 'KeyFileError'; }
}

/**
 * The key file: at least 16 bytes of secret (a line of hex or base64 is fine: the file's bytes, trimmed,
 * are the key), readable by its owner only, so a key left world-readable is refused rather than trusted.
 */
export function readKeyFile(path: string): Buffer {
  let st;
  try { st = statSync(path); } catch (e) { throw new KeyFileError(`key file ${path} cannot be read: ${(e as Error).message}`); }
  if ((st.mode & 0o077) !== 0) throw new KeyFileError(`key file ${path} is readable by group or others (mode ${(st.mode & 0o777).toString(8)}); chmod 600 it`);
  const key = Buffer.from(readFileSync(path, 'utf8').trim(), 'utf8');
  if (key.length < MIN_KEY_BYTES) throw new KeyFileError(`key file ${path} holds ${key.length} bytes; at least ${MIN_KEY_BYTES} are needed (e.g. openssl rand -hex 32)`);
  return key;
}

// node:crypto at first use (lib/builtin.ts): the multicall binary must not load it for every plugin exec.
const mac = (key: Buffer, body: Buffer) => nodeCrypto().createHmac('sha256', key).update(body).digest();

export function seal(f: Frame, key: Buffer): Buffer {
  const body = encodeBody(f);
  return Buffer.concat([body, mac(key, body)]);
}

export type Opened = { ok: true; frame: Frame } | { ok: false; drop: Drop; why: string };

/** Size, then MAC, then decoding: a datagram is a frame or a reason it was dropped, never an exception. */
export function open(datagram: Buffer, key: Buffer): Opened {
  if (datagram.length < HEADER_MIN + MAC_LEN || datagram.length > MAX_DATAGRAM) return { ok: false, drop: 'malformed', why: `${datagram.length} bytes is no message of ours` };
  const body = datagram.subarray(0, datagram.length - MAC_LEN);
  const got = datagram.subarray(datagram.length - MAC_LEN);
  if (!nodeCrypto().timingSafeEqual(mac(key, body), got)) return { ok: false, drop: 'forged', why: 'bad MAC (another key, or altered on the way)' };
  try { return { ok: true, frame: decodeBody(body) }; } catch (e) {
    if (e instanceof WireError) return { ok: false, drop: 'malformed', why: e.message };
    throw e;
  }
}

/**
 * A sender's sequence numbers: microseconds since the epoch, at least one more than the last, so they
 * keep rising across a restart without being stored (as long as the clock does not jump back by more
 * than the agent was down).
 */
export class Sequence {
  private last = 0n;
  next(now: number): bigint {
    const t = BigInt(Math.floor(now)) * 1000n;
    this.last = t > this.last ? t : this.last + 1n;
    return this.last;
  }
}

/**
 * Replay protection: a sender's sequence must rise (an exact or older copy is a replay), and the send
 * time must be within the window of our clock (a capture replayed after we restarted and forgot the
 * sequence is still too old). Senders are only remembered after their MAC checked, so the map cannot
 * be flooded by someone without the key; it is bounded all the same.
 */
export class ReplayGuard {
  private readonly highest = new Map<string, bigint>();
  constructor(private readonly windowMs: number, private readonly maxSenders = 4096) {}

  check(f: Frame, now: number): { ok: true } | { ok: false; drop: Drop; why: string } {
    if (Math.abs(now - f.sentAt) > this.windowMs) return { ok: false, drop: 'stale', why: `sent ${Math.round((now - f.sentAt) / 1000)} s from our clock (window ${this.windowMs / 1000} s)` };
    const last = this.highest.get(f.sender);
    if (last !== undefined && f.seq <= last) return { ok: false, drop: 'replayed', why: `sequence ${f.seq} not above ${last}` };
    if (last === undefined && this.highest.size >= this.maxSenders) {
      const oldest = this.highest.keys().next().value as string;
      this.highest.delete(oldest);
    }
    this.highest.set(f.sender, f.seq);
    return { ok: true };
  }
}
