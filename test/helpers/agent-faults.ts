import { readdirSync, readFileSync, readlinkSync } from 'node:fs';
import { runIn } from '../../conformance/spawn.js';
import { parseNetworkList } from '../../lib/libcni/conf.js';
import { ipamUsage, type IpamUsage } from '../../ipam/usage.js';
import { driverFor, addPod, removePod, type LabNode, type LabPod, type LabState } from '../../lab/index.js';
import { alive } from '../../lab/procs.js';
import { netnsPath } from '../../lib/netns/netns.js';
import { paced } from './pace.js';

// What the agent-fault tests share: figures of a running tetherd read from /proc, its /metrics, pod churn
// on one node through the CNI plugin, and SIGKILLs of that node's tetherd.

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export const seedFrom = (env: string | undefined) => (env ? Number(env) : Math.floor(Math.random() * 2 ** 31));

/** What a process holds right now: open descriptors, its sockets by kind, and its resident memory (KiB). */
export interface ProcFigures { fds: number; sockets: number; byKind: Record<string, number>; rssKiB: number }

const fdLinks = (pid: number) => readdirSync(`/proc/${pid}/fd`).map((fd) => { try { return readlinkSync(`/proc/${pid}/fd/${fd}`); } catch { return ''; } }).filter(Boolean);

/** Socket inodes of the process's namespace by kind: tcp, tcp6, udp, unix, netlink (from /proc/<pid>/net). */
function socketKinds(pid: number): Map<string, string> {
  const out = new Map<string, string>();
  const table = (file: string, kind: string, col: number) => {
    try {
      for (const l of readFileSync(`/proc/${pid}/net/${file}`, 'utf8').trim().split('\n').slice(1)) {
        const f = l.trim().split(/\s+/);
        if (f[col]) out.set(f[col], kind);
      }
    } catch { /* no such table */ }
  };
  table('tcp', 'tcp', 9); table('tcp6', 'tcp6', 9); table('udp', 'udp', 9); table('udp6', 'udp6', 9); table('unix', 'unix', 6); table('netlink', 'netlink', 9);
  return out;
}

export function procFigures(pid: number): ProcFigures {
  const links = fdLinks(pid);
  const kinds = socketKinds(pid);
  const byKind: Record<string, number> = {};
  for (const l of links) {
    const inode = /^socket:\[(\d+)\]$/.exec(l)?.[1];
    if (inode) { const k = kinds.get(inode) ?? 'other'; byKind[k] = (byKind[k] ?? 0) + 1; }
  }
  const rss = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return { fds: links.length, sockets: links.filter((l) => l.startsWith('socket:')).length, byKind, rssKiB: rss ? Number(rss[1]) : NaN };
}

const TCP_STATES: Record<string, string> = { '01': 'established', '02': 'syn-sent', '03': 'syn-recv', '04': 'fin-wait1', '05': 'fin-wait2', '06': 'time-wait', '07': 'close', '08': 'close-wait', '09': 'last-ack', '0A': 'listen', '0B': 'closing' };

/**
 * The process's TCP sockets that touch `port` (either end), as "state local->remote", read from its own
 * descriptors and its namespace's /proc/net/tcp: a socket the process forgot to close shows up here.
 */
export function tcpSocketsOn(pid: number, port?: number): string[] {
  const inodes = new Set(fdLinks(pid).map((l) => /^socket:\[(\d+)\]$/.exec(l)?.[1]).filter(Boolean));
  const hexPort = port?.toString(16).toUpperCase().padStart(4, '0');
  const addr = (h: string) => { const [ip, p] = h.split(':'); return `${[3, 2, 1, 0].map((i) => parseInt(ip.slice(i * 2, i * 2 + 2), 16)).join('.')}:${parseInt(p, 16)}`; };
  return readFileSync(`/proc/${pid}/net/tcp`, 'utf8').trim().split('\n').slice(1).map((l) => l.trim().split(/\s+/))
    .filter((f) => inodes.has(f[9]) && (!hexPort || f[1].endsWith(`:${hexPort}`) || f[2].endsWith(`:${hexPort}`)))
    .map((f) => `${TCP_STATES[f[3]] ?? f[3]} ${addr(f[1])}->${addr(f[2])}`).sort();
}

/** The process's Unix sockets, by bound path ("-" for an unnamed one, e.g. a client's end). */
export function unixSocketsOf(pid: number): string[] {
  const inodes = new Set(fdLinks(pid).map((l) => /^socket:\[(\d+)\]$/.exec(l)?.[1]).filter(Boolean));
  return readFileSync(`/proc/${pid}/net/unix`, 'utf8').trim().split('\n').slice(1).map((l) => l.trim().split(/\s+/))
    .filter((f) => inodes.has(f[6])).map((f) => f[7] ?? '-').sort();
}

/** One scrape of the node's tetherd /metrics (on the node namespace's loopback, as the lab configures it). */
export async function scrape(node: LabNode): Promise<string> {
  const r = await runIn(netnsPath(node.netns), '/bin/busybox', ['wget', '-q', '-O-', 'http://127.0.0.1:9310/metrics'], 15_000);
  if (r.status !== 0) throw new Error(`scraping ${node.name}: ${r.stderr}`);
  return r.stdout;
}

/** Every sample of a metric, with its labels. */
export function samples(text: string, name: string): { labels: Record<string, string>; value: number }[] {
  return text.split('\n').filter((l) => l.startsWith(`${name}{`) || l.startsWith(`${name} `)).map((l) => {
    const m = /^[^{ ]+(?:\{(.*)\})? (\S+)$/.exec(l)!;
    const labels = Object.fromEntries([...(m[1] ?? '').matchAll(/(\w+)="([^"]*)"/g)].map((x) => [x[1], x[2]]));
    return { labels, value: Number(m[2]) };
  });
}

/** Pod churn on one node: ADDs and DELs through the node's CNI network, one at a time, until stopped. */
export class Churn {
  adds = 0;
  dels = 0;
  readonly errors: string[] = [];
  private stopped = false;
  private done: Promise<void> = Promise.resolve();

  constructor(private readonly lab: LabState, private readonly node: LabNode, private readonly rand: () => number, private readonly o: { min: number; max: number; pauseMs: number }) {}

  private podsHere(): LabPod[] { return this.lab.pods.filter((p) => p.node === this.node.name); }

  start(): this {
    this.done = (async () => {
      while (!this.stopped) {
        const here = this.podsHere();
        // Between min and max pods: each step adds or removes one at random.
        const add = here.length <= this.o.min || (here.length < this.o.max && this.rand() < 0.5);
        try {
          if (add) { await addPod(this.lab, this.node); this.adds++; } else { await removePod(this.lab, here[Math.floor(this.rand() * here.length)]); this.dels++; }
        } catch (e) {
          this.errors.push(`${add ? 'ADD' : 'DEL'}: ${(e as Error).message}`);
          if (this.errors.length > 5) return;
        }
        await sleep(this.o.pauseMs * (0.5 + this.rand()));
      }
    })();
    return this;
  }

  async stop(): Promise<void> {
    this.stopped = true;
    await this.done;
  }
}

/** duringStart: killed before the restarted agent said it was ready; afterReady: at a random moment after. */
export interface KillFigures { kills: number; duringStart: number; afterReady: number }

/**
 * The node's tetherd SIGKILLed `kills` times: the one running now, then each restart, either while it
 * is still starting (before it says it is ready) or a random moment after it is. At the end it is
 * started once more and left running. Only our own agent's PID is signalled.
 */
export async function killRepeatedly(lab: LabState, node: LabNode, kills: number, rand: () => number): Promise<KillFigures> {
  const driver = await driverFor(lab.mode);
  const f: KillFigures = { kills: 0, duringStart: 0, afterReady: 0 };
  const kill = async (ready: boolean) => {
    // Our own child, just started (it may not have exec'd yet, so no marker check): its PID cannot be reused before we reap it.
    const pid = node.agentPid!;
    if (!alive(pid)) throw new Error(`tetherd of ${node.name} (pid ${pid}) is not running`);
    process.kill(pid, 'SIGKILL');
    for (const until = Date.now() + paced(10_000); alive(pid) && Date.now() < until;) await sleep(20);
    if (alive(pid)) throw new Error(`tetherd ${pid} survived SIGKILL`);
    node.agentPid = undefined;
    f.kills++;
    if (ready) f.afterReady++; else f.duringStart++;
  };
  await sleep(300 + rand() * 1500);
  await kill(true);
  while (f.kills < kills) {
    let ready = false;
    const started = driver.startNode(lab, node).then(() => { ready = true; return true; }, () => false);
    if (rand() < 0.4) {
      // Somewhere in its start-up: registering, listing the store, the first programming.
      await sleep(rand() ** 2 * 300);
      if (node.agentPid && alive(node.agentPid)) await kill(ready);
      await started;
      if (node.agentPid && alive(node.agentPid)) await kill(true);
    } else {
      if (!(await started)) throw new Error(`tetherd on ${node.name} did not come up after kill ${f.kills}`);
      await sleep(200 + rand() * 2000);
      await kill(true);
    }
    await sleep(rand() * 500);
  }
  await driver.startNode(lab, node);
  return f;
}

/** What tether-ipam holds for the node's pod network (the store is the truth: blocks and their slots). */
export async function ipamOfNode(lab: LabState, node: LabNode): Promise<IpamUsage> {
  const d = await driverFor(lab.mode);
  return ipamUsage(parseNetworkList(Buffer.from(JSON.stringify(d.podNetwork(lab, node)))));
}

/**
 * Problems in what IPAM holds against the pods that exist: an address held by no pod (leaked), a pod
 * holding none or more than one per family, an address held twice.
 */
export function ipamProblems(allocations: { ip: string; containerID: string; ifname: string }[], pods: LabPod[]): string[] {
  const problems: string[] = [];
  const byIP = new Map<string, number>();
  for (const a of allocations) byIP.set(a.ip, (byIP.get(a.ip) ?? 0) + 1);
  for (const [ip, n] of byIP) if (n > 1) problems.push(`${ip} held ${n} times`);
  const ids = new Set(pods.map((p) => p.containerID));
  for (const a of allocations) if (!ids.has(a.containerID)) problems.push(`${a.ip} leaked (held by ${a.containerID}/${a.ifname}, which does not exist)`);
  for (const p of pods) {
    const mine = allocations.filter((a) => a.containerID === p.containerID);
    const v4 = mine.filter((a) => !a.ip.includes(':'));
    if (v4.length !== 1 || v4[0].ip !== p.ip) problems.push(`${p.name} (${p.ip}) holds ${JSON.stringify(mine.map((a) => a.ip))}`);
    if (mine.filter((a) => a.ip.includes(':')).length > 1) problems.push(`${p.name} holds several IPv6 addresses`);
  }
  return problems;
}
