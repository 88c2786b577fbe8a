import { writeSync } from 'node:fs';

// The runtime floor: what any Bun-compiled program costs to exec, print one line and exit, before a
// line of tether runs. Built by the benchmark with the same flags as dist/bin/tether.
writeSync(1, 'hello\n');
process.exit(0);
