import { appendFileSync, readFileSync, writeSync } from 'node:fs';
// Phase timings for one plugin run, printed to stderr when TETHER_TRACE is set: the quickest way to
// see where an ADD spends its time on a live node. Times are milliseconds since the process started.
// A TETHER_TRACE that is an absolute path appends the line to that file instead: runtimes (containerd,
// podman) keep a plugin's stderr only when it fails.
// The exit line adds the process's memory: peak resident, and the resident split into anonymous
// (this process's own) and file-backed pages (the executable's, shared with every other exec).
const on = !!process.env.TETHER_TRACE;
const marks: string[] = [];

let hooked = false;

export function mark(label: string): void {
  if (!on) return;
  marks.push(`${label} ${performance.now().toFixed(2)}`);
  if (!hooked) {
    hooked = true;
    process.on('beforeExit', () => marks.push(`beforeExit ${performance.now().toFixed(2)}`));
    process.on('exit', () => {
      marks.push(`exit ${performance.now().toFixed(2)}`, memory());
      const line = `trace: ${marks.join(' | ')}\n`;
      const target = process.env.TETHER_TRACE!;
      if (target.startsWith('/')) appendFileSync(target, line);
      else writeSync(2, line);
    });
  }
}

/** VmHWM, RssAnon and RssFile of /proc/self/status, in MiB. */
function memory(): string {
  let status = '';
  try { status = readFileSync('/proc/self/status', 'utf8'); } catch { return 'memory unknown'; }
  const kib = (field: string) => Number(new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(status)?.[1] ?? NaN);
  const mib = (field: string) => (kib(field) / 1024).toFixed(1);
  return `peak ${mib('VmHWM')} MiB (now anon ${mib('RssAnon')}, file ${mib('RssFile')})`;
}
