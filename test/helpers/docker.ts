import type { ChildProcess } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, unlinkSync, writeFileSync } from 'node:fs';
import { basename, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createOutside, type Outside } from '../../conformance/lab.js';
import { runIn, waitForLine, type RunOutcome } from '../../conformance/spawn.js';
import type { DockerPluginConfig } from '../../docker/config.js';
import { childProcess } from '../../lib/builtin.js';
import { parseCIDR } from '../../lib/ip/addr.js';
import { Netlink } from '../../lib/netlink/handle.js';
import { deleteNamedNetns } from '../../lib/netns/netns.js';
import { until } from './wait.js';

// A private dockerd 20.10 for one test file, the way ../shared/reference/docker starts it (its scripts are
// copied to test/rig/docker): its own network namespace and mount namespace, everything else under a short
// temporary WORKDIR, stopped by PID. The driver under test runs inside both of dockerd's namespaces.

const RIG = fileURLToPath(new URL('../../../test/rig/docker/', import.meta.url));
const TETHERD = fileURLToPath(new URL('../../../dist/bin/tetherd', import.meta.url));
export const DOCKER = '/usr/bin/docker';
export const IMAGE = 'tdk-busybox:latest';

export class DockerRig {
  readonly dir = mkdtempSync('/tmp/tdk.');
  readonly stateDir = join(this.dir, 'tstate');
  netns = '';
  /** Where dockerd's namespace is seen from this process. */
  netnsPath = '';
  outside?: Outside;
  private plugin?: ChildProcess;
  private pluginLog = '';

  get env(): NodeJS.ProcessEnv {
    return { ...process.env, DOCKER_HOST: `unix://${this.dir}/docker.sock`, DOCKER_CONFIG: join(this.dir, 'cli') };
  }

  get dockerdPid(): number { return Number(readFileSync(join(this.dir, 'dockerd.pid'), 'utf8')); }

  private async script(name: string, args: string[], env: NodeJS.ProcessEnv = process.env, timeoutMs = 120_000): Promise<RunOutcome> {
    const r = await runIn(undefined, join(RIG, name), args, timeoutMs, '', env);
    if (r.status !== 0) throw new Error(`${name} ${args.join(' ')} failed (${r.status}${r.timedOut ? ', timed out' : ''}): ${r.stderr.trim()}\n${r.stdout.trim()}`);
    return r;
  }

  /**
   * dockerd up, the busybox image imported, an `outside` namespace routed as the host's uplink. With
   * `netns` (a lab node's namespace), dockerd runs in that one instead of a namespace of its own, and the
   * node's underlay is its uplink: no outside is made.
   */
  async start(o: { netns?: string } = {}): Promise<void> {
    await this.script('start-dockerd.sh', [this.dir], o.netns ? { ...process.env, TDK_NETNS: o.netns } : process.env);
    this.netns = readFileSync(join(this.dir, 'netns'), 'utf8').trim();
    this.netnsPath = `/var/run/netns/${this.netns}`;
    await this.script('build-image.sh', [this.dir]);
    if (o.netns) return;
    this.outside = createOutside(this.netnsPath, `${this.netns}-out`, 'uplink0');
    // The outside's end has no route back to the containers: only masqueraded traffic gets answers.
    Netlink.within(this.netnsPath, (nl) => nl.routeAdd({ family: 4, dst: null, gateway: parseCIDR(`${this.outside!.outsideIP}/32`)!.ip, oif: nl.linkByName('uplink0')!.index }));
  }

  /** dockerd stopped (SIGTERM, its containers stopped by it, not removed) and started again on the same data. */
  async restartDockerd(): Promise<void> {
    const pid = this.dockerdPid;
    process.kill(pid, 'SIGTERM');
    await until('dockerd to exit', () => !existsSync(`/proc/${pid}`), { ms: 60_000, every: 100 });
    unlinkSync(join(this.dir, 'dockerd.pid'));
    await this.script('start-dockerd.sh', [this.dir], { ...process.env, TDK_NETNS: this.netns });
  }

  /** What the running dockerd has logged (start-dockerd.sh starts the log afresh with each dockerd). */
  dockerdLog(): string { return readFileSync(join(this.dir, 'dockerd.log'), 'utf8'); }

  docker(args: string[], timeoutMs = 120_000): Promise<RunOutcome> {
    return runIn(undefined, DOCKER, args, timeoutMs, '', this.env);
  }

  /** docker ARGS that must succeed: its stdout, trimmed. */
  async ok(...args: string[]): Promise<string> {
    const r = await this.docker(args);
    if (r.status !== 0) throw new Error(`docker ${args.join(' ')} failed (${r.status}): ${r.stderr.trim()}`);
    return r.stdout.trim();
  }

  /** tetherd docker-plugin inside dockerd's network and mount namespaces, serving /run/docker/plugins/tether.sock. */
  async startPlugin(config?: DockerPluginConfig): Promise<void> {
    const args = ['--socket', '/run/docker/plugins/tether.sock', '--state-dir', this.stateDir];
    if (config) {
      writeFileSync(join(this.dir, 'plugin.json'), JSON.stringify(config));
      args.push('--config', join(this.dir, 'plugin.json'));
    }
    const child = childProcess().spawn('nsenter', ['--target', String(this.dockerdPid), '--net', '--mount', '--', TETHERD, 'docker-plugin', ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    child.stderr!.on('data', (b: Buffer) => { this.pluginLog += b.toString(); });
    this.plugin = child;
    await waitForLine(child, 'tetherd docker-plugin: ready', 30_000);
  }

  get pluginStderr(): string { return this.pluginLog; }

  /** One of the driver's own methods (Tether.*) on its socket, as cnictl calls them: the answer's JSON, or throws with its Err. */
  driverCall<T>(method: string, body = ''): Promise<T> {
    const http = process.getBuiltinModule('node:http') as typeof import('node:http');
    return new Promise((resolve, reject) => {
      const req = http.request({ socketPath: join(this.dir, 'plugins', 'tether.sock'), method: 'POST', path: `/${method}`, timeout: 60_000 }, (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => {
          const json = JSON.parse(Buffer.concat(chunks).toString('utf8')) as T & { Err?: string };
          if (res.statusCode !== 200) reject(new Error(`${method}: HTTP ${res.statusCode}: ${json.Err}`)); else resolve(json);
        });
      });
      req.on('timeout', () => req.destroy(new Error(`${method}: no answer in 60 s`)));
      req.on('error', reject);
      req.end(body);
    });
  }

  /** SIGTERM (or SIGKILL) to the driver by its PID, and wait for it to be gone. */
  async stopPlugin(signal: NodeJS.Signals = 'SIGTERM'): Promise<void> {
    const p = this.plugin;
    this.plugin = undefined;
    if (!p || p.exitCode !== null) return;
    const gone = new Promise((r) => p.once('close', r));
    p.kill(signal);
    await gone;
  }

  /** Links of dockerd's namespace, by name. */
  links(): string[] { return Netlink.within(this.netnsPath, (nl) => nl.links().map((l) => l.name)); }

  /** A command in dockerd's network namespace (nft, ip). */
  inNs(cmd: string, args: string[]): Promise<RunOutcome> { return runIn(this.netnsPath, cmd, args, 30_000); }

  async stop(): Promise<void> {
    // Containers first, while the driver still answers: with it gone dockerd retries every call for seconds.
    if (this.plugin && existsSync(join(this.dir, 'dockerd.pid'))) {
      const ids = (await this.docker(['ps', '-aq'], 30_000)).stdout.split('\n').filter(Boolean);
      if (ids.length) await this.docker(['rm', '-f', ...ids], 120_000);
    }
    try { await this.stopPlugin(); } catch { /* gone */ }
    if (this.outside) deleteNamedNetns(`${this.netns}-out`);
    if (existsSync(join(this.dir, 'netns'))) await this.script('stop-dockerd.sh', [this.dir]).catch((e: Error) => process.stderr.write(`${e.message}\n`));
    // TETHER_TEST_KEEP_DOCKERD_LOG=DIR keeps each dockerd's log there (CI failures are read from it).
    const keep = process.env.TETHER_TEST_KEEP_DOCKERD_LOG;
    if (keep && existsSync(join(this.dir, 'dockerd.log'))) {
      mkdirSync(keep, { recursive: true });
      copyFileSync(join(this.dir, 'dockerd.log'), join(keep, `${basename(this.dir)}.dockerd.log`));
      writeFileSync(join(keep, `${basename(this.dir)}.plugin.log`), this.pluginLog);
    }
    rmSync(this.dir, { recursive: true, force: true });
  }
}
