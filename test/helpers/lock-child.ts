import { existsSync, writeSync } from 'node:fs';
import { withFileLock, withFileLockSync } from '../../lib/store/lock.js';

// One process of the lock tests: `node lock-child.js PATH HOLD_MS NAME [sync|async] [STUCK_MS]`.
// HOLD_MS "until:FILE" holds until FILE exists. Prints "queued", then "acquired NAME" and "released NAME" (or "error MESSAGE") on stdout, one per line.
const [path, holdMs, name, mode = 'async', stuckMs] = process.argv.slice(2);
const say = (s: string) => writeSync(1, `${s}\n`);
const o = { what: `child ${name}`, stuckMs: stuckMs ? Number(stuckMs) : undefined };
try {
  if (mode === 'sync') {
    say('queued');
    withFileLockSync(path, () => {
      say(`acquired ${name}`);
      const until = Date.now() + Number(holdMs);
      while (Date.now() < until) { /* busy, as a synchronous holder is */ }
    }, o);
  } else {
    say('queued');
    await withFileLock(path, async () => {
      say(`acquired ${name}`);
      if (holdMs.startsWith('until:')) {
        while (!existsSync(holdMs.slice(6))) await new Promise((r) => setTimeout(r, 10));
      } else await new Promise((r) => setTimeout(r, Number(holdMs)));
    }, o);
  }
  say(`released ${name}`);
  process.exit(0);
} catch (e) {
  say(`error ${(e as Error).message}`);
  process.exit(3);
}
