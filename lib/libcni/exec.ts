import { childProcess } from '../builtin.js';
import { inNetns } from '../netns/netns.js';

export interface ExecRequest {
  file: string;
  env: NodeJS.ProcessEnv;
  stdin: Buffer | string;
  timeoutMs: number;
  /** Start the process inside this network namespace (it inherits the spawning thread's). */
  netns?: string;
}

export interface ExecOutcome {
  status: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
  timedOut: boolean;
  ms: number;
}

/**
 * Runs a plugin and collects its output. The child gets its own process group so a timeout kills
 * whatever it started too (an IPAM plugin it exec'd). With `netns`, the fork happens while this
 * thread is inside the namespace, which is how the harness keeps plugins out of the real host.
 */
export function execPlugin(req: ExecRequest): Promise<ExecOutcome> {
  return new Promise((resolve, reject) => {
    const start = process.hrtime.bigint();
    const launch = () => childProcess().spawn(req.file, [], { env: req.env, stdio: ['pipe', 'pipe', 'pipe'], detached: true });
    let child: ReturnType<typeof launch>;
    try {
      child = req.netns ? inNetns(req.netns, launch) : launch();
    } catch (e) {
      reject(e);
      return;
    }
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      try { process.kill(-child.pid!, 'SIGKILL'); } catch { /* already gone */ }
    }, req.timeoutMs);
    child.stdout!.on('data', (b: Buffer) => out.push(b));
    child.stderr!.on('data', (b: Buffer) => err.push(b));
    child.stdin!.on('error', () => { /* a plugin that exits without reading stdin is fine */ });
    child.on('error', (e) => { clearTimeout(timer); reject(e); });
    child.on('close', (status, signal) => {
      clearTimeout(timer);
      resolve({
        status, signal, timedOut,
        stdout: Buffer.concat(out).toString('utf8'),
        stderr: Buffer.concat(err).toString('utf8'),
        ms: Number(process.hrtime.bigint() - start) / 1e6,
      });
    });
    child.stdin!.end(req.stdin);
  });
}
