import { readFileSync, writeFileSync } from 'node:fs';

// /proc/sys/net belongs to the namespace of the thread that opens the file, so these calls act on
// whatever namespace the caller is in: call them inside inNetns() to configure a container.

function path(key: string): string {
  // Slash form only: interface names may contain dots (eth0.100), so dotted keys are ambiguous.
  if (key.includes('..') || key.startsWith('/')) throw new Error(`invalid sysctl key ${key}`);
  return `/proc/sys/${key}`;
}

export function sysctlGet(key: string): string {
  return readFileSync(path(key), 'utf8').trim();
}

/** Writes only when the value differs, so repeated plugin runs do not churn the kernel. Returns true if changed. */
export function sysctlSet(key: string, value: string | number): boolean {
  const want = String(value);
  if (sysctlGet(key) === want) return false;
  writeFileSync(path(key), want);
  return true;
}
