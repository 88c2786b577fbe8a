import { readFileSync } from 'node:fs';
import { writeJsonAtomic } from '../json-file.js';
import type { Logger } from '../log.js';
import type { PeerStatus } from './session.js';
import type { RibSnapshot, Speaker } from './speaker.js';

// The speaker's state as a JSON file, written by whoever hosts it (tetherd, `tether bgp-speaker`) and
// read by `cnictl bgp peers|routes`: no socket to serve, and the last state stays readable after a crash.

export interface SpeakerSnapshot {
  pid: number;
  time: string;
  asn: number;
  routerId: string;
  peers: PeerStatus[];
  routes: RibSnapshot;
}

export function snapshot(s: Speaker, asn: number, routerId: string): SpeakerSnapshot {
  return { pid: process.pid, time: new Date().toISOString(), asn, routerId, peers: s.peers(), routes: s.routes() };
}

/** Replaced atomically, so a reader never sees half a file (indent 1: a full RIB makes a big document). */
export function writeSnapshot(file: string, snap: SpeakerSnapshot): void { writeJsonAtomic(file, snap, 1); }

/**
 * Keeps the status file current for a running speaker: at most one snapshot per 250 ms (a burst of
 * UPDATEs from many peers must not mean one file write of the whole RIB each), plus one every 5 s so
 * readers see a fresh time. `flush()` writes at once (start, stop).
 */
export function statusWriter(file: string, speaker: Speaker, who: () => { asn: number; routerId: string }, log: Logger): { flush(): void; close(): void } {
  let timer: NodeJS.Timeout | undefined;
  const flush = () => {
    clearTimeout(timer);
    timer = undefined;
    try {
      const { asn, routerId } = who();
      writeSnapshot(file, snapshot(speaker, asn, routerId));
    } catch (e) {
      log.warn(`status ${file}: ${(e as Error).message}`);
    }
  };
  const soon = () => { timer ??= setTimeout(flush, 250); };
  speaker.on('change', soon);
  const tick = setInterval(soon, 5000);
  return { flush, close: () => { clearInterval(tick); clearTimeout(timer); speaker.off('change', soon); } };
}

export function readSnapshot(file: string): SpeakerSnapshot {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') throw new Error(`no BGP speaker status at ${file}: is tetherd (or tether bgp-speaker) running with BGP?`);
    throw e;
  }
  return JSON.parse(text) as SpeakerSnapshot;
}

function duration(s: number | undefined): string {
  if (s === undefined) return '-';
  const d = Math.floor(s / 86400);
  const h = Math.floor((s % 86400) / 3600);
  const m = Math.floor((s % 3600) / 60);
  const sec = s % 60;
  const hms = `${String(h).padStart(2, '0')}:${String(m).padStart(2, '0')}:${String(sec).padStart(2, '0')}`;
  return d ? `${d}d${hms}` : hms;
}

/** Rows for `cnictl bgp peers`. */
export function peerRows(s: SpeakerSnapshot, now = Date.now()): { head: string[]; rows: string[][] } {
  // The snapshot may be a few seconds old: uptimes count on from when it was taken.
  const age = Math.max(0, Math.floor((now - Date.parse(s.time)) / 1000)) || 0;
  return {
    head: ['PEER', 'ASN', 'STATE', 'UPTIME', 'ROUTER-ID', 'IN', 'OUT', 'INFO'],
    rows: s.peers.map((p) => [
      p.address, String(p.asn), p.state, duration(p.uptime === undefined ? undefined : p.uptime + age), p.routerId ?? '-', String(p.prefixesIn), String(p.prefixesOut),
      [p.gracefulRestart ? `restarting: ${p.gracefulRestart.stale} stale` : '', p.lastError ? `last: ${p.lastError}` : ''].filter(Boolean).join('; '),
    ]),
  };
}

/** Rows for `cnictl bgp routes`: our prefixes first, then every learned path (* marks the best). */
export function routeRows(s: SpeakerSnapshot): { head: string[]; rows: string[][] } {
  const rows = s.routes.local.map((l) => [' ', l.prefix, 'local', '-', l.blackhole ? 'blackhole' : 'announced', '', '']);
  for (const r of s.routes.learned) {
    rows.push([
      r.best ? '*' : ' ', r.prefix, r.nextHop, r.peer, r.stale ? 'stale' : '',
      r.asPath.length ? r.asPath.join(' ') : '(iBGP)', [r.localPref !== undefined ? `lp ${r.localPref}` : '', r.med !== undefined ? `med ${r.med}` : '', ...(r.communities ?? [])].filter(Boolean).join(' '),
    ]);
  }
  return { head: ['', 'PREFIX', 'NEXT-HOP', 'PEER', 'FLAGS', 'AS-PATH', 'ATTRIBUTES'], rows };
}
