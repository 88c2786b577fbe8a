import { writeSync } from 'node:fs';
// Phase timings for one plugin run, printed to stderr when TETHER_TRACE is set: the quickest way to
// see where an ADD spends its time on a live node. Times are milliseconds since the process started.
const on = !!process.env.TETHER_TRACE;
const marks: string[] = [];

let hooked = false;

export function mark(label: string): void {
  if (!on) return;
  marks.push(`${label} ${performance.now().toFixed(2)}`);
  if (!hooked) {
    hooked = true;
    process.on('beforeExit', () => marks.push(`beforeExit ${performance.now().toFixed(2)}`));
    process.on('exit', () => { marks.push(`exit ${performance.now().toFixed(2)}`); writeSync(2, `trace: ${marks.join(" | ")}\n`); });
  }
}
