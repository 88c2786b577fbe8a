import type { Parsed } from '../lib/argv.js';
import type { CniRuntime } from '../lib/libcni/runtime.js';

/** What every cnictl command gets: its parsed arguments, where to write, and the runtime to run chains with. */
export interface Ctx {
  p: Parsed;
  json: boolean;
  out(s: string): void;
  confDir: string;
  runtime: CniRuntime;
}
