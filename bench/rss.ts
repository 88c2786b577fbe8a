import { spawnSync } from 'node:child_process';
import { sys } from '../lib/sys/index.js';

// Peak resident memory of one command, in its own process: getrusage(RUSAGE_CHILDREN) reports the
// largest child this process waited for, so the measuring process must run nothing else.
// Usage: node build/bench/rss.js <runs> <file> [args...]   (env and stdin: CNI_* from the environment, stdin from BENCH_STDIN)
const [runs, file, ...args] = process.argv.slice(2);
for (let i = 0; i < Number(runs); i++) {
  spawnSync(file, args, { input: process.env.BENCH_STDIN ?? '', stdio: ['pipe', 'ignore', 'ignore'] });
}
process.stdout.write(`${sys.childrenUsage().maxRssKiB}\n`);
