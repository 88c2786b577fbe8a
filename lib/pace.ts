import { cpus, loadavg } from 'node:os';

/**
 * How much slower than an idle machine this one is right now, measured on the spot: the run queue
 * per core over the last minute (at least 1). A bound on how long something may take is multiplied by
 * it, so a machine busy with other work (CI, a CPU hog on every core) gets proportionally more time
 * instead of a failure. Bounds stay bounds: a hung wait still ends.
 */
export function slowness(): number {
  return Math.max(1, loadavg()[0] / cpus().length);
}

/** A time limit for this machine as it is now. */
export const paced = (ms: number) => Math.round(ms * slowness());
