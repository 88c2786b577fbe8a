import { closeSync, openSync, readFileSync } from 'node:fs';
import { childProcess } from '../lib/builtin.js';
import { inNetns } from '../lib/netns/netns.js';

/**
 * Long-lived lab processes (etcd, tetherd, iperf3 servers) are known by PID only, so a lab brought
 * up by one `cnictl lab up` can be stopped by a later `cnictl lab down`. Before signalling, the PID's
 * command line is checked against what was started: a recycled PID is never killed.
 */
export function spawnDaemon(netns: string | undefined, file: string, args: string[], logFile: string): number {
  const log = openSync(logFile, 'a');
  try {
    const launch = () => childProcess().spawn(file, args, { stdio: ['ignore', log, log], detached: true });
    const child = netns ? inNetns(netns, launch) : launch();
    child.unref();
    if (!child.pid) throw new Error(`could not start ${file}`);
    return child.pid;
  } finally { closeSync(log); }
}

function cmdline(pid: number): string | undefined {
  try { return readFileSync(`/proc/${pid}/cmdline`, 'utf8').replace(/\0/g, ' '); } catch { return undefined; }
}

/** Running (a zombie waiting to be reaped counts as gone) and still the program we started. */
export function alive(pid: number, marker: string): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    if (/^\d+ \(.*\) Z/.test(stat)) return false;
  } catch { return false; }
  return cmdline(pid)?.includes(marker) ?? false;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** SIGTERM, then SIGKILL after graceMs; resolves once the process is gone. Only our own PIDs (marker checked). */
export async function stopPid(pid: number, marker: string, graceMs = 3000): Promise<void> {
  if (!alive(pid, marker)) return;
  try { process.kill(pid, 'SIGTERM'); } catch { return; }
  const until = Date.now() + graceMs;
  while (Date.now() < until) {
    if (!alive(pid, marker)) return;
    await sleep(20);
  }
  try { process.kill(pid, 'SIGKILL'); } catch { /* gone */ }
  for (let i = 0; i < 100 && alive(pid, marker); i++) await sleep(20);
}
