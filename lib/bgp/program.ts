import { readFileSync } from 'node:fs';
import { createLogger, isLevel, type Logger } from '../log.js';
import { Netlink } from '../netlink/handle.js';
import { KernelRoutes } from './kernel.js';
import type { PeerConfig } from './session.js';
import { peersFor, type NodeInfo, type TopologyOptions } from './topology.js';
import { Speaker } from './speaker.js';
import { DEFAULT_BGP_STATUS_FILE } from '../paths.js';
import { statusWriter } from './status.js';

// `tether bgp-speaker --config FILE`: the speaker on its own, for interop tests and for trying it out.
// SIGHUP re-reads the file (peers and announced prefixes); SIGTERM/SIGINT end every session with
// Cease/2, remove the kernel routes it installed and exit. --status FILE (or "status" in the config;
// default /run/tether/bgp-status.json, what `cnictl bgp` reads) receives a JSON snapshot of peers and
// RIB whenever something changes.

export interface ProgramConfig {
  asn?: number;
  routerId: string;
  listen?: { address: string; port?: number }[];
  /** Explicit peers (with `topology`, added to the computed ones). */
  peers?: PeerConfig[];
  /** Peers computed from the node list as tetherd does from the store: mesh, or route reflectors. */
  topology?: { self: string; nodes: NodeInfo[] } & Omit<TopologyOptions, 'peers' | 'asn'>;
  /** Prefixes to announce: a string is an owned block (blackholed here); {blackhole: false} for a borrowed /32. */
  announce?: (string | { prefix: string; blackhole?: boolean })[];
  nextHops?: { v4?: string; v6?: string };
  restartTime?: number;
  /** Install learned routes and blackholes in this namespace's kernel (default true). */
  kernel?: boolean | { table?: number; metric?: number };
  status?: string;
  log?: { file?: string; level?: string };
}

function arg(argv: string[], name: string): string | undefined {
  const i = argv.indexOf(`--${name}`);
  return i >= 0 ? argv[i + 1] : undefined;
}

function load(file: string): ProgramConfig {
  const c = JSON.parse(readFileSync(file, 'utf8')) as ProgramConfig;
  if (typeof c.routerId !== 'string') throw new Error(`${file}: routerId is required`);
  if (c.peers !== undefined && !Array.isArray(c.peers)) throw new Error(`${file}: peers must be a list`);
  if (!c.peers && !c.topology) throw new Error(`${file}: give peers, a topology, or both`);
  return c;
}

function peersOf(c: ProgramConfig): PeerConfig[] {
  if (!c.topology) return c.peers ?? [];
  const { self, nodes, ...o } = c.topology;
  return peersFor(self, nodes, { ...o, asn: c.asn, peers: c.peers });
}

function announcements(c: ProgramConfig): Map<string, boolean> {
  return new Map((c.announce ?? []).map((a) => (typeof a === 'string' ? [a, true] : [a.prefix, a.blackhole ?? true])));
}

export async function bgpSpeakerMain(argv: string[]): Promise<number> {
  const file = arg(argv, 'config');
  if (!file) {
    process.stderr.write('usage: tether bgp-speaker --config FILE [--status FILE]\n');
    return 2;
  }
  let config = load(file);
  const level = config.log?.level;
  const log: Logger = createLogger({ component: 'bgp-speaker', file: config.log?.file, level: isLevel(level) ? level : 'info' });
  const statusFile = arg(argv, 'status') ?? config.status ?? DEFAULT_BGP_STATUS_FILE;
  const kernelOpt = config.kernel ?? true;
  const kernel = kernelOpt ? new KernelRoutes(Netlink.open(), typeof kernelOpt === 'object' ? kernelOpt : {}) : undefined;
  const removed = kernel?.reconcile() ?? [];
  if (removed.length) log.info(`removed ${removed.length} routes a previous run left in the kernel`);
  const speaker = new Speaker({
    asn: config.asn ?? 64512, routerId: config.routerId, listen: config.listen, peers: peersOf(config),
    nextHops: config.nextHops, restartTime: config.restartTime, sink: kernel, log,
  });
  let announced = announcements(config);
  for (const [p, blackhole] of announced) speaker.announce(p, { blackhole });

  const status = statusWriter(statusFile, speaker, () => ({ asn: config.asn ?? 64512, routerId: config.routerId }), log);
  await speaker.start();
  status.flush();
  log.info(`speaker up: AS ${config.asn ?? 64512}, router id ${config.routerId}, ${speaker.peers().length} peers`);

  process.on('SIGHUP', () => {
    try {
      config = load(file);
      speaker.setPeers(peersOf(config));
      const next = announcements(config);
      for (const p of announced.keys()) if (!next.has(p)) speaker.withdraw(p);
      for (const [p, blackhole] of next) speaker.announce(p, { blackhole });
      announced = next;
      log.info('configuration reloaded');
    } catch (e) {
      log.error(`reload failed, keeping the running configuration: ${(e as Error).message}`);
    }
  });

  return new Promise((resolve) => {
    const finish = () => {
      speaker.stop();
      kernel?.clear();
      status.flush();
      status.close();
      // Give the Cease NOTIFICATIONs a moment to leave.
      setTimeout(() => resolve(0), 200);
    };
    process.once('SIGTERM', finish);
    process.once('SIGINT', finish);
  });
}
