import { writeSync } from 'node:fs';
import { basename } from 'node:path';
import { LINKS } from '../lib/programs.js';
import { programs } from './programs.js';
import { mark } from '../lib/trace.js';

// One binary, many names: the name it was exec'd by picks the program.
async function main(): Promise<number> {
  mark('main');
  let name = basename(process.argv0 || '');
  let argv = process.argv.slice(2);
  if (!programs[name]) {
    // Invoked as `tether`, or under node/bun during development: the program is the first argument.
    if (argv[0] && programs[argv[0]]) {
      name = argv[0];
      argv = argv.slice(1);
    } else {
      writeSync(2, `tether: one binary for ${LINKS.join(', ')}.\nRun it through a link with one of those names, or as: tether <name> [arguments]\n`);
      return argv.length ? 2 : 0;
    }
  }
  const program = await programs[name]();
  return program(argv);
}

// No top-level await: it would make the whole module graph asynchronous and slower to start.
// Plugins and cnictl write everything synchronously, so once main returns there is nothing left to
// flush: exiting at once skips the runtime's orderly teardown, which costs milliseconds per exec.
// Programs that serve (probe, the node agent) return only when they are done.
main().then((code) => { mark('done'); process.exit(code); }, (e: unknown) => {
  writeSync(2, `tether: ${e instanceof Error ? e.message : String(e)}\n`);
  process.exit(1);
});
