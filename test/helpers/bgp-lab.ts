import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { closeSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { formatCIDR, formatIP, parseCIDR } from '../../lib/ip/addr.js';
import * as C from '../../lib/netlink/constants.js';
import { Netlink } from '../../lib/netlink/handle.js';
import type { Route } from '../../lib/netlink/route.js';
import { openNetns } from '../../lib/netns/netns.js';
import type { ProgramConfig } from '../../lib/bgp/program.js';
import type { PeerStatus } from '../../lib/bgp/session.js';
import type { SpeakerSnapshot } from '../../lib/bgp/status.js';
import { Namespaces } from './netns.js';
import { waitFor as poll } from './wait.js';
import { RTPROT_TETHER_BGP } from '../../lib/route-protocols.js';

// Two namespaces joined by a veth on 198.18.0.0/24 + 2001:db8:18::/64: "us" (.1, our speaker) and
// "peer" (.2, BIRD / GoBGP / FRR). Every process started here is stopped by PID; every namespace and
// temporary file is removed by cleanup().

const root = fileURLToPath(new URL('../../../', import.meta.url));


export class BgpLab {
  readonly ns = new Namespaces('tbg');
  readonly dir = mkdtempSync(join(tmpdir(), 'tbg-'));
  private readonly pids = new Set<number>();
  private readonly children: ChildProcess[] = [];

  /** A namespace pair; names are `<prefix>-<tag>u` and `<prefix>-<tag>p`. */
  pair(tag: string): { us: string; peer: string; usPath: string; peerPath: string } {
    const usPath = this.ns.add(`${tag}u`);
    const peerPath = this.ns.add(`${tag}p`);
    const us = `${this.ns.prefix}-${tag}u`;
    const peer = `${this.ns.prefix}-${tag}p`;
    const fd = openNetns(peerPath);
    try {
      Netlink.within(usPath, (nu) => Netlink.within(peerPath, (np) => {
        const a = nu.linkAdd({ kind: 'veth', name: 'tbg0', up: true, peer: { name: 'tbg1', netnsFd: fd } })!;
        const b = np.linkByName('tbg1')!;
        np.linkSet(b.index, { up: true });
        for (const [nl, idx, n] of [[nu, a.index, 1], [np, b.index, 2]] as const) {
          nl.addrAdd(idx, parseCIDR(`198.18.0.${n}/24`)!);
          nl.addrAdd(idx, parseCIDR(`2001:db8:18::${n}/64`)!, { flags: C.IFA_F_NODAD });
          nl.linkSet(nl.linkByName('lo')!.index, { up: true });
        }
      }));
    } finally {
      closeSync(fd);
    }
    return { us, peer, usPath, peerPath };
  }

  addAddress(path: string, dev: string, cidr: string): void {
    Netlink.within(path, (nl) => { nl.addrAdd(nl.linkByName(dev)!.index, parseCIDR(cidr)!); });
  }

  file(name: string, text: string): string {
    const p = join(this.dir, name);
    writeFileSync(p, text);
    return p;
  }

  /** Runs a command inside a namespace to completion (for CLIs: birdc, gobgp, vtysh). */
  exec(ns: string, cmd: string[], timeoutMs = 10_000): string {
    const r = spawnSync('ip', ['netns', 'exec', ns, ...cmd], { encoding: 'utf8', timeout: timeoutMs });
    if (r.status !== 0) throw new Error(`${cmd.join(' ')} in ${ns}: exit ${r.status}: ${r.stderr}${r.stdout}`);
    return r.stdout;
  }

  /** A long-running process inside a namespace (ip netns exec execs, so the child's PID is the program's). */
  spawn(ns: string, cmd: string[], log: string): ChildProcess {
    const out = join(this.dir, log);
    const child = spawn('ip', ['netns', 'exec', ns, ...cmd], { stdio: ['ignore', 'pipe', 'pipe'] });
    const chunks: Buffer[] = [];
    child.stdout!.on('data', (d) => chunks.push(d));
    child.stderr!.on('data', (d) => { chunks.push(d); writeFileSync(out, Buffer.concat(chunks)); });
    this.children.push(child);
    if (child.pid) this.pids.add(child.pid);
    child.on('exit', () => { if (child.pid) this.pids.delete(child.pid); });
    return child;
  }

  /** A daemon that forks and writes its PID to a file: remember that PID. */
  daemonPid(pidFile: string): number {
    // The daemon may still be writing it when its launcher returns.
    const end = Date.now() + 5000;
    for (;;) {
      let pid = NaN;
      try { pid = Number(readFileSync(pidFile, 'utf8').trim()); } catch { /* not yet */ }
      if (pid > 0) { this.pids.add(pid); return pid; }
      if (Date.now() > end) throw new Error(`no PID in ${pidFile}`);
      spawnSync('sleep', ['0.05']);
    }
  }

  kill(pid: number, signal: NodeJS.Signals = 'SIGTERM'): void {
    try { process.kill(pid, signal); } catch { /* already gone */ }
    if (signal === 'SIGKILL') this.pids.delete(pid);
  }

  alive(pid: number): boolean {
    try { process.kill(pid, 0); return true; } catch { return false; }
  }

  async waitGone(pid: number, ms = 5000): Promise<void> {
    const end = Date.now() + ms;
    while (this.alive(pid) && Date.now() < end) await sleep(50);
    if (this.alive(pid)) this.kill(pid, 'SIGKILL');
    this.pids.delete(pid);
  }

  /** Our speaker in `ns`, from the Node build or the compiled binary. */
  speaker(ns: string, name: string, config: ProgramConfig, how: 'node' | 'binary' = 'node') {
    const cfg = this.file(`${name}.json`, JSON.stringify(config));
    const status = join(this.dir, `${name}.status.json`);
    const cmd = how === 'node'
      ? [process.execPath, join(root, 'build/bin/tether.js'), 'bgp-speaker', '--config', cfg, '--status', status]
      : [join(root, 'dist/bin/tether'), 'bgp-speaker', '--config', cfg, '--status', status];
    const child = this.spawn(ns, cmd, `${name}.log`);
    const lab = this;
    return {
      child,
      statusFile: status,
      status(): SpeakerSnapshot | null {
        try { return JSON.parse(readFileSync(status, 'utf8')) as SpeakerSnapshot; } catch { return null; }
      },
      peer(address: string): PeerStatus | undefined { return this.status()?.peers.find((p) => p.address === address); },
      reload(next: ProgramConfig): void { writeFileSync(cfg, JSON.stringify(next)); child.kill('SIGHUP'); },
      log(): string { try { return readFileSync(join(lab.dir, `${name}.log`), 'utf8'); } catch { return ''; } },
      async stop(): Promise<number | null> {
        if (child.exitCode !== null) return child.exitCode;
        const done = new Promise<number | null>((r) => child.once('exit', (code) => r(code)));
        child.kill('SIGTERM');
        const t = setTimeout(() => child.kill('SIGKILL'), 5000);
        const code = await done;
        clearTimeout(t);
        return code;
      },
    };
  }

  /** BIRD 2 in `ns` with its control socket and PID file in our directory. */
  bird(ns: string, name: string, conf: string, recover = false) {
    const c = this.file(`${name}.conf`, conf);
    const ctl = join(this.dir, `${name}.ctl`);
    const pidFile = join(this.dir, `${name}.pid`);
    rmSync(pidFile, { force: true });
    this.exec(ns, ['bird', ...(recover ? ['-R'] : []), '-c', c, '-s', ctl, '-P', pidFile]);
    const pid = this.daemonPid(pidFile);
    return { pid, birdc: (...cmd: string[]) => this.exec(ns, ['birdc', '-s', ctl, ...cmd]) };
  }

  /** Kernel routes of one family installed by `protocol` (default ours) in a namespace. */
  routes(path: string, family: 4 | 6, protocol = RTPROT_TETHER_BGP): Route[] {
    return Netlink.within(path, (nl) => nl.routes(family, { protocol }));
  }

  routeMap(path: string, family: 4 | 6, protocol = RTPROT_TETHER_BGP): Record<string, string> {
    return Object.fromEntries(this.routes(path, family, protocol).map((r) => [
      r.dst ? formatCIDR(r.dst) : 'default',
      r.type === C.RTN_BLACKHOLE ? 'blackhole' : r.gateway ? `via ${formatIP(r.gateway)}` : 'other',
    ]));
  }

  async cleanup(): Promise<void> {
    for (const pid of this.pids) { this.kill(pid, 'SIGCONT'); this.kill(pid, 'SIGTERM'); }
    const end = Date.now() + 5000;
    while ([...this.pids].some((p) => this.alive(p)) && Date.now() < end) await sleep(50);
    for (const pid of this.pids) if (this.alive(pid)) this.kill(pid, 'SIGKILL');
    this.pids.clear();
    this.ns.cleanup();
    if (existsSync(this.dir)) rmSync(this.dir, { recursive: true, force: true });
  }
}

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Polls until fn returns a truthy value (a throw is "not yet"), or throws after ms with what was last seen. */
export async function waitFor<T>(what: string, fn: () => T | null | undefined | false, ms = 30_000): Promise<T> {
  return (await poll(what, fn, { ms, every: 200, retryErrors: true })).value as T;
}
