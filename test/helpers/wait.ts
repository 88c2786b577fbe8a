/**
 * Polling for the kernel, a store or an agent to reach a state: the tests' one way to wait for a condition,
 * bounded, never a fixed sleep as the assertion.
 */
export interface WaitOptions {
  /** Give up after this long on an idle machine; a busy one gets proportionally longer (pace.ts). */
  ms: number;
  /** Between two looks. */
  every: number;
  /** A condition that throws is "not yet" (the error is reported if time runs out); by default it fails the wait at once. */
  retryErrors?: boolean;
  /** What to report if time runs out (by default the condition's last value or error). */
  last?: () => unknown;
}

import { paced } from './pace.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function describe(v: unknown): string {
  return v instanceof Error ? v.message : JSON.stringify(v) ?? String(v);
}

/** Polls cond until it gives a truthy value: that value and how long it took; throws after o.ms naming what. */
export async function waitFor<T>(what: string, cond: () => T | Promise<T>, o: WaitOptions): Promise<{ value: T; elapsed: number }> {
  const t0 = Date.now();
  let seen: unknown;
  let bound = paced(o.ms);
  for (;;) {
    try {
      const value = await cond();
      if (value) return { value, elapsed: Date.now() - t0 };
      seen = value;
    } catch (e) {
      if (!o.retryErrors) throw e;
      seen = e;
    }
    if (Date.now() - t0 >= bound) {
      // The machine may have got busier while we waited: judge by how busy it is now.
      bound = Math.max(bound, paced(o.ms));
      if (Date.now() - t0 >= bound) throw new Error(`timed out after ${Date.now() - t0} ms (${o.ms} ms paced for this machine's load) waiting for ${what}; last: ${describe(o.last ? o.last() : seen)}`);
    }
    await sleep(o.every);
  }
}

/** waitFor, for a yes/no condition: how long it took (ms). */
export async function until(what: string, cond: () => unknown, o: WaitOptions): Promise<number> {
  return (await waitFor(what, cond, o)).elapsed;
}
