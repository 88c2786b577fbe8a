import { sys } from '../lib/sys/index.js';

/** CPU time (user + system) of every descendant this process has waited for, in ms: a delta around work is that work's process tree. */
export function childrenCpuMs(): number {
  const u = sys.childrenUsage();
  return u.userMs + u.sysMs;
}
