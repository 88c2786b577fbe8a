import type { ChildProcess } from 'node:child_process';
import { childProcess } from '../lib/builtin.js';
import { inNetns } from '../lib/netns/netns.js';

/** How to run this program again as a child: the compiled binary itself, or node with our entry script. */
export function selfCommand(): [string, string[]] {
  if ('Bun' in globalThis) return [process.execPath, []];
  return [process.execPath, [new URL('../bin/tether.js', import.meta.url).pathname]];
}

/** Starts a process inside a network namespace: fork happens while this thread is in it, so the child is born there. */
export function startIn(netns: string | undefined, file: string, args: string[], env: NodeJS.ProcessEnv = process.env): ChildProcess {
  const launch = () => childProcess().spawn(file, args, { env, stdio: ['pipe', 'pipe', 'pipe'], detached: true });
  return netns ? inNetns(netns, launch) : launch();
}

export interface RunOutcome { status: number | null; stdout: string; stderr: string; timedOut: boolean }

export function runIn(netns: string | undefined, file: string, args: string[], timeoutMs = 10_000, input = '', env: NodeJS.ProcessEnv = process.env): Promise<RunOutcome> {
  return new Promise((resolve, reject) => {
    let child: ChildProcess;
    try { child = startIn(netns, file, args, env); } catch (e) { reject(e); return; }
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    let timedOut = false;
    const timer = setTimeout(() => { timedOut = true; try { process.kill(-child.pid!, 'SIGKILL'); } catch { /* gone */ } }, timeoutMs);
    child.stdout!.on('data', (b: Buffer) => out.push(b));
    child.stderr!.on('data', (b: Buffer) => err.push(b));
    child.stdin!.on('error', () => {});
    child.on('error', (e) => { clearTimeout(timer); reject(e); });
    child.on('close', (status) => {
      clearTimeout(timer);
      resolve({ status, timedOut, stdout: Buffer.concat(out).toString(), stderr: Buffer.concat(err).toString() });
    });
    child.stdin!.end(input);
  });
}

/** Waits until the child prints a line starting with `marker` (a server announcing it listens). */
export function waitForLine(child: ChildProcess, marker: string, timeoutMs = 5000): Promise<string> {
  return new Promise((resolve, reject) => {
    let buf = '';
    const timer = setTimeout(() => reject(new Error(`no "${marker}" from pid ${child.pid} within ${timeoutMs} ms: ${buf.trim()}`)), timeoutMs);
    const onData = (b: Buffer) => {
      buf += b.toString();
      const line = buf.split('\n').find((l) => l.startsWith(marker));
      if (line) { clearTimeout(timer); child.stdout!.off('data', onData); resolve(line); }
    };
    child.stdout!.on('data', onData);
    child.on('close', (code) => { clearTimeout(timer); reject(new Error(`pid ${child.pid} exited (${code}) before "${marker}": ${buf.trim()}`)); });
  });
}

export function stop(child: ChildProcess): void {
  try { process.kill(-child.pid!, 'SIGKILL'); } catch { /* already gone */ }
}
