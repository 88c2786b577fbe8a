import { appendLine } from '../../lib/log.js';

// Run as a child process by the log tests: appends N numbered lines to a file with a tiny rotation
// size, so several of these at once exercise rotation under concurrent writers.
const [file, id, n, maxBytes, keep] = process.argv.slice(2);
for (let i = 0; i < Number(n); i++) {
  appendLine(file, `${JSON.stringify({ writer: id, i, pad: 'x'.repeat(40) })}\n`, { maxBytes: Number(maxBytes), keep: Number(keep) });
}
