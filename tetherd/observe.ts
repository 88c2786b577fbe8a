import { rmSync } from 'node:fs';
import { isAbsolute } from 'node:path';
import { DEFAULT_AGENT_STATE_FILE } from '../lib/paths.js';
import { DEFAULT_METRICS_ADDRESS, parseListenAddress } from '../lib/metrics-http.js';
import { Netlink } from '../lib/netlink/handle.js';
import { EtcdKV } from '../lib/store/etcd.js';
import { startObserver } from '../observe/serve.js';
import type { TetherMetrics } from '../observe/tether-metrics.js';
import { AgentConfigError, type AgentConfig } from './config.js';
import { RTPROT_TETHER_VXLAN } from '../lib/route-protocols.js';
import type { AgentEvents } from './events.js';
import { writeJsonAtomic } from '../lib/json-file.js';
import type { NodeState } from '../lib/node-state.js';
import type { PeerStatus, RibSnapshot } from '../lib/bgp/index.js';
import { parseRecord, SUBNETS } from './subnets.js';

// tetherd's metrics and health file. Kept beside the agent rather than inside it: the agent emits a typed
// event for everything worth counting (lease renewals, nodes joining and leaving, reconciles, watch
// restarts, errors; tetherd/events.ts), the counters follow those, and the gauges are read where the truth
// is at scrape time: the kernel for what is programmed, the store for nodes and leases.

/** The optional "observe" section of tetherd's config file. */
export interface ObserveConfig {
  /** host:port for /metrics and /healthz; null switches the server off. */
  metricsAddress: string | null;
  /** The health state file `cnictl status` reads. */
  healthFile: string;
  /** How often the health file is rewritten (cnictl calls an agent stale after 60 s without). */
  healthIntervalMs: number;
  /** A CNI conf dir whose tether-ipam (and tether-vxlan) networks are reported as tether_ipam_* gauges. */
  confDir?: string;
  /** The plugins' operation log (their `log.file`), followed for tether_cni_* series. */
  opLog?: string;
}

export function parseObserveConfig(raw: unknown): ObserveConfig {
  const o = (raw as { observe?: unknown } | null)?.observe ?? {};
  if (typeof o !== 'object' || o === null || Array.isArray(o)) throw new AgentConfigError('observe', 'must be an object');
  const c = o as Record<string, unknown>;
  const metricsAddress = c.metricsAddress === undefined ? DEFAULT_METRICS_ADDRESS : c.metricsAddress;
  if (metricsAddress !== null) {
    if (typeof metricsAddress !== 'string') throw new AgentConfigError('observe.metricsAddress', 'must be host:port, [ipv6]:port, :port or null', metricsAddress);
    try { parseListenAddress(metricsAddress); } catch (e) { throw new AgentConfigError('observe.metricsAddress', (e as Error).message.replace(/^metrics address /, '')); }
  }
  const path = (k: string, dflt?: string): string | undefined => {
    const v = c[k] ?? dflt;
    if (v !== undefined && (typeof v !== 'string' || !isAbsolute(v))) throw new AgentConfigError(`observe.${k}`, 'must be an absolute path', v);
    return v as string | undefined;
  };
  const every = c.healthIntervalMs ?? 15_000;
  if (!Number.isInteger(every) || (every as number) < 100 || (every as number) > 50_000) throw new AgentConfigError('observe.healthIntervalMs', 'must be an integer from 100 to 50000 (cnictl calls an agent stale after 60 s)', every);
  return { metricsAddress: metricsAddress as string | null, healthFile: path('healthFile', DEFAULT_AGENT_STATE_FILE)!, healthIntervalMs: every as number, confDir: path('confDir'), opLog: path('opLog') };
}

/** Counters from the agent's typed events (never from the wording of its log lines). */
function countAgentEvents(m: TetherMetrics, events: AgentEvents): () => void {
  return events.on((e) => {
    switch (e.kind) {
      case 'lease': m.leaseRenewals.inc({ result: e.result }); break;
      case 'node': m.routeChanges.inc({ source: 'vxlan', op: e.op }); break;
      case 'resync': m.resyncs.inc({ reason: e.reason }); break;
      case 'watch': m.watchRestarts.inc({ reason: e.reason }); break;
      case 'bgp-transition': m.bgpSessionTransitions.inc({ peer: e.peer, from: e.from, to: e.to }); break;
      case 'peer-message': m.peerMessages.inc({ result: e.result }); break;
      case 'error': m.errors.inc({ component: 'tetherd', code: e.code }); break;
    }
  });
}

/** Routes tetherd owns (one per programmed peer) in the namespace it runs in. */
function programmedPeers(): number {
  return Netlink.within((nl) => nl.routes(4).filter((r) => r.protocol === RTPROT_TETHER_VXLAN && r.dst).length);
}

export interface AgentView {
  readonly state: NodeState;
}

export interface AgentMetrics {
  /** The address /metrics is served on, when it is. */
  address?: string;
  metrics?: TetherMetrics;
  stop(): Promise<void>;
}

/**
 * Serves tetherd's metrics when an address is configured. Started before the agent, so the events of its
 * start-up (the first listing and reconcile) are counted too.
 */
export async function startAgentMetrics(c: AgentConfig, o: ObserveConfig, version: string, events: AgentEvents): Promise<AgentMetrics> {
  if (o.metricsAddress === null) return { stop: async () => {} };
  const served = await serve(o, version, events);
  const m = served.metrics!;
  const kv = new EtcdKV({ ...c.etcd, prefix: `${c.etcd.prefix}/vxlan/${c.network}/` });
  m.registry.collect(async () => {
    const programmed = programmedPeers();
    m.remoteNodes.set({ state: 'programmed' }, programmed);
    m.routes.set({ source: 'vxlan' }, programmed);
    const t0 = performance.now();
    try {
      const { entries } = await kv.rangeWithRevision(SUBNETS);
      let nodes = 0, leased = 0;
      for (const [k, e] of entries) {
        if (e.lease) leased++;
        const p = parseRecord(k, e.value);
        if (p && p.node !== c.nodeName) nodes++;
      }
      m.remoteNodes.set({ state: 'known' }, nodes);
      m.leases.set({ state: 'live' }, leased);
    } catch {
      m.errors.inc({ component: 'tetherd', code: 'store_list' });
    } finally {
      m.agentOperationSeconds.observe({ operation: 'store_list' }, (performance.now() - t0) / 1000);
    }
  });
  return served;
}

/** The observer's server on the configured address, with the metric set and event counters every mode shares. */
async function serve(o: ObserveConfig, version: string, events: AgentEvents): Promise<AgentMetrics> {
  const { metrics, server } = await startObserver({ address: o.metricsAddress!, version, confDir: o.confDir, opLog: o.opLog });
  const untap = countAgentEvents(metrics, events);
  return {
    address: server.address,
    metrics,
    async stop() {
      untap();
      // A scraper holding its connection open must not keep the agent from stopping.
      await Promise.race([server.close(), new Promise((r) => setTimeout(r, 1000).unref())]);
    },
  };
}

/**
 * Keeps the health file `cnictl status` reads fresh: written now (the agent has started), every
 * healthIntervalMs, at once when the agent says something changed (write()), and removed by stop(), so
 * a clean stop reads "not running" rather than "stale". `fields` says what the agent's mode knows about the node.
 */
export function keepHealthFile(o: ObserveConfig, m: AgentMetrics, fields: () => Record<string, unknown>): { stop(): void; write(): void } {
  const write = () => { try { writeJsonAtomic(o.healthFile, { pid: process.pid, updatedAt: new Date().toISOString(), ...fields(), metrics: m.address ?? null }); } catch { m.metrics?.errors.inc({ component: 'tetherd', code: 'health_file' }); } };
  write();
  const timer = setInterval(write, o.healthIntervalMs);
  return {
    write,
    stop() {
      clearInterval(timer);
      rmSync(o.healthFile, { force: true });
    },
  };
}

/** The VXLAN agent's part of the health file. */
export const vxlanHealth = (agent: AgentView) => (): Record<string, unknown> => {
  let remoteNodes: number | undefined;
  try { remoteNodes = programmedPeers(); } catch { /* reported as absent */ }
  const s = agent.state;
  return { mode: 'vxlan', node: s.node, network: s.network, subnet: s.subnet, mtu: s.mtu, device: s.device, underlayIP: s.underlayIP, remoteNodes };
};

/** What the BGP agent shows of itself: its node, its sessions and its routing table. */
export interface BgpView {
  node: string;
  network: string;
  asn: number;
  routerId: string;
  /** Other nodes registered in the store. */
  nodes: number;
  peers: PeerStatus[];
  routes: RibSnapshot;
}

const FSM_STATES = ['Idle', 'Connect', 'Active', 'OpenSent', 'OpenConfirm', 'Established'] as const;

/** tetherd's metrics in BGP mode: sessions by state and per peer, routes learned and announced, read from the speaker at scrape time. */
export async function startBgpMetrics(o: ObserveConfig, version: string, view: () => BgpView, events: AgentEvents): Promise<AgentMetrics> {
  if (o.metricsAddress === null) return { stop: async () => {} };
  const served = await serve(o, version, events);
  const m = served.metrics!;
  const peersSeen = new Set<string>();
  m.registry.collect(() => {
    const v = view();
    for (const s of FSM_STATES) m.bgpSessions.set({ state: s.toLowerCase() }, v.peers.filter((p) => p.state === s).length);
    const now = new Set(v.peers.map((p) => p.address));
    for (const p of v.peers) { m.bgpSessionUp.set({ peer: p.address }, p.state === 'Established' ? 1 : 0); peersSeen.add(p.address); }
    // A peer that is gone reads 0, not its last value.
    for (const p of peersSeen) if (!now.has(p)) m.bgpSessionUp.set({ peer: p }, 0);
    m.routes.set({ source: 'bgp' }, v.routes.learned.filter((r) => r.best).length);
    m.routes.set({ source: 'local' }, v.routes.local.length);
    m.remoteNodes.set({ state: 'known' }, v.nodes);
  });
  return served;
}

/** Peer mode's gauges, read from the agent's view at scrape time (its drop counters come from events). */
export async function startPeerMetrics(o: ObserveConfig, version: string, events: AgentEvents, view: () => { members: Record<string, number>; blocks: Record<string, number> }): Promise<AgentMetrics> {
  if (o.metricsAddress === null) return { stop: async () => {} };
  const served = await serve(o, version, events);
  const m = served.metrics!;
  m.registry.collect(() => {
    const v = view();
    for (const [state, n] of Object.entries(v.members)) m.peerMembers.set({ state }, n);
    for (const [kind, n] of Object.entries(v.blocks)) m.peerBlocks.set({ kind }, n);
  });
  return served;
}

/** The BGP agent's part of the health file. */
export const bgpHealth = (view: () => BgpView) => (): Record<string, unknown> => {
  const v = view();
  return {
    mode: 'bgp', node: v.node, network: v.network, asn: v.asn, routerId: v.routerId,
    sessions: { established: v.peers.filter((p) => p.state === 'Established').length, total: v.peers.length },
    announced: v.routes.local.map((l) => l.prefix), learned: v.routes.learned.filter((r) => r.best).length,
  };
};
