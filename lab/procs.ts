import { closeSync, openSync, readFileSync } from 'node:fs';
import { childProcess } from '../lib/builtin.js';
import { inNetns } from '../lib/netns/netns.js';

/**
 * Long-lived lab processes (etcd, tetherd, iperf3 servers) are known by PID only, so a lab brought
 * up by one `cnictl lab up` can be stopped by a later `cnictl lab down`. Before signalling, the PID's
 * command line is checked against what was started: a recycled PID is never killed.
 */
export function spawnDaemon(netns: string | undefined, file: string, args: string[], logFile: string, cwd?: string): number {
  const log = openSync(logFile, 'a');
  try {
    const launch = () => childProcess().spawn(file, args, { stdio: ['ignore', log, log], detached: true, cwd });
    const child = netns ? inNetns(netns, launch) : launch();
    child.unref();
    if (!child.pid) throw new Error(`could not start ${file}`);
    return child.pid;
  } finally { closeSync(log); }
}

function cmdline(pid: number): string | undefined {
  return argvOf(pid)?.join(' ');
}

/** The process's argument vector, as it was exec'd. */
export function argvOf(pid: number): string[] | undefined {
  try { return readFileSync(`/proc/${pid}/cmdline`, 'utf8').replace(/\0$/, '').split('\0'); } catch { return undefined; }
}

/**
 * Running (a zombie waiting to be reaped counts as gone) and, with a marker, still the program we
 * started. Right after spawn the child may not have exec'd yet (its command line is still ours), so a
 * process just started is checked without one.
 */
export function alive(pid: number, marker?: string): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    if (/^\d+ \(.*\) Z/.test(stat)) return false;
  } catch { return false; }
  return marker === undefined || (cmdline(pid)?.includes(marker) ?? false);
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Our own child that has not exec'd yet also counts as the program (its parent is this process). */
function ours(pid: number, marker: string): boolean {
  if (alive(pid, marker)) return true;
  if (!alive(pid)) return false;
  try { return Number(readFileSync(`/proc/${pid}/stat`, 'utf8').replace(/^.*\) /s, '').split(' ')[1]) === process.pid; } catch { return false; }
}

/** SIGTERM, then SIGKILL after graceMs; resolves once the process is gone. Only our own PIDs (marker checked). */
export async function stopPid(pid: number, marker: string, graceMs = 3000): Promise<void> {
  if (!ours(pid, marker)) return;
  try { process.kill(pid, 'SIGTERM'); } catch { return; }
  const until = Date.now() + graceMs;
  while (Date.now() < until) {
    if (!alive(pid)) return;
    await sleep(20);
  }
  if (!ours(pid, marker)) return;
  try { process.kill(pid, 'SIGKILL'); } catch { /* gone */ }
  for (let i = 0; i < 100 && alive(pid); i++) await sleep(20);
}
