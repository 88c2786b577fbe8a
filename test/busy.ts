import { spawn, type ChildProcess } from 'node:child_process';
import { cpus } from 'node:os';

// `npm run test:busy`: the README's test command on a busy machine, a CPU hog on every core for the
// whole run, as CI and new users often have it. The hogs are this script's own children, stopped by
// pid however the run ends.

const hogs: ChildProcess[] = cpus().map(() => spawn(process.execPath, ['-e', 'for (;;) {}'], { stdio: 'ignore' }));
const stopHogs = () => { for (const h of hogs) if (h.exitCode === null && h.signalCode === null) h.kill('SIGKILL'); };
process.on('exit', stopHogs);
for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) process.on(sig, () => { stopHogs(); process.exit(130); });

const started = Date.now();
process.stdout.write(`test:busy: ${hogs.length} CPU hogs (pids ${hogs.map((h) => h.pid).join(', ')}) beside npm test\n`);
const run = spawn('npm', ['test', ...process.argv.slice(2)], { stdio: 'inherit' });
run.on('exit', (code, signal) => {
  stopHogs();
  process.stdout.write(`test:busy: npm test ${code === 0 ? 'passed' : `failed (${signal ?? `exit ${code}`})`} in ${((Date.now() - started) / 1000).toFixed(0)} s beside ${hogs.length} CPU hogs\n`);
  process.exit(code ?? 1);
});
