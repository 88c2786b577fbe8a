import { mkdirSync, readdirSync, readFileSync, renameSync, unlinkSync, writeFileSync, openSync, fsyncSync, closeSync } from 'node:fs';
import { join } from 'node:path';

/** libcni's result cache record, byte-compatible so libcni runtimes and cnictl can read each other's. */
export interface CacheEntry {
  kind: 'cniCacheV1';
  containerId: string;
  ifName: string;
  networkName: string;
  netns?: string;
  /** base64 of the whole network list JSON, as Go marshals a []byte. */
  config: string;
  cniArgs?: [string, string][];
  capabilityArgs?: Record<string, unknown>;
  result: Record<string, unknown>;
}

export const cacheFile = (cacheDir: string, network: string, containerID: string, ifname: string) =>
  join(cacheDir, 'results', `${network}-${containerID}-${ifname}`);

/** Written to a temporary file, synced and renamed: a crash leaves the old record or the new one, never half. */
export function writeCache(cacheDir: string, entry: CacheEntry): void {
  const dir = join(cacheDir, 'results');
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const file = cacheFile(cacheDir, entry.networkName, entry.containerId, entry.ifName);
  const tmp = `${file}.tmp-${process.pid}`;
  writeFileSync(tmp, JSON.stringify(entry), { mode: 0o600 });
  const fd = openSync(tmp, 'r');
  try { fsyncSync(fd); } finally { closeSync(fd); }
  renameSync(tmp, file);
}

export type CacheRead = { entry: CacheEntry } | { missing: true } | { corrupt: string };

export function readCache(cacheDir: string, network: string, containerID: string, ifname: string): CacheRead {
  const file = cacheFile(cacheDir, network, containerID, ifname);
  let text: string;
  try { text = readFileSync(file, 'utf8'); } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return { missing: true };
    throw e;
  }
  try {
    const v = JSON.parse(text) as Partial<CacheEntry> & Record<string, unknown>;
    if (v.kind === 'cniCacheV1' && v.result && typeof v.result === 'object') return { entry: v as CacheEntry };
    // A pre-cniCacheV1 record is the bare result.
    if (v.cniVersion) {
      return { entry: { kind: 'cniCacheV1', containerId: containerID, ifName: ifname, networkName: network, config: '', result: v as Record<string, unknown> } };
    }
    return { corrupt: `${file}: not a CNI cache record` };
  } catch (e) {
    return { corrupt: `${file}: ${(e as Error).message}` };
  }
}

export function deleteCache(cacheDir: string, network: string, containerID: string, ifname: string): void {
  try { unlinkSync(cacheFile(cacheDir, network, containerID, ifname)); } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
  }
}

/** Every readable record, optionally of one network. */
export function listCache(cacheDir: string, network?: string): CacheEntry[] {
  let names: string[];
  try { names = readdirSync(join(cacheDir, 'results')); } catch { return []; }
  const out: CacheEntry[] = [];
  for (const n of names) {
    if (n.includes('.tmp-')) continue;
    if (network && !n.startsWith(`${network}-`)) continue;
    try {
      const v = JSON.parse(readFileSync(join(cacheDir, 'results', n), 'utf8')) as CacheEntry;
      if (v.kind !== 'cniCacheV1' || !v.containerId || !v.ifName || !v.networkName) continue;
      if (network && v.networkName !== network) continue;
      out.push(v);
    } catch { /* skip unreadable records */ }
  }
  return out.sort((a, b) => a.networkName.localeCompare(b.networkName) || a.containerId.localeCompare(b.containerId));
}
