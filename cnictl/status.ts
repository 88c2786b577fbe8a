import { existsSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { DEFAULT_STATE_DIR, DriverState } from '../docker/state.js';
import { hostname } from 'node:os';
import { listCache } from '../lib/libcni/cache.js';
import { scanConfDir } from '../lib/libcni/conf.js';
import { table } from './format.js';
import { ipamUsage, usesTetherIpam } from '../ipam/usage.js';
import { AGENT_STALE_MS } from '../lib/paths.js';

// `cnictl status` without a network: a summary of the node from what is on disk. Networks from the conf
// dir, attachments from the result cache, IPAM use of every tether-ipam network, and the agent's health
// from the state file tetherd keeps. Nothing here calls a plugin, so it answers even when one is broken.


export interface AgentHealth {
  state: 'running' | 'stale' | 'not running';
  file: string;
  reason?: string;
  pid?: number;
  updatedAt?: string;
  /** Everything else the agent wrote (sessions, routes, leases...): shown, not interpreted. */
  details?: Record<string, unknown>;
}

export interface NetworkStatus {
  name?: string;
  file: string;
  plugins?: string[];
  error?: string;
  attachments: number;
  ipam?: { store: string; rangeSets: { ranges: string; used: number; size: number }[] } | { error: string };
}

export interface NodeStatus {
  node: string;
  confDir: string;
  cacheDir: string;
  networks: NetworkStatus[];
  attachments: { network: string; containerID: string; ifname: string; netns: string; ips: string[] }[];
  agent: AgentHealth;
  /** Endpoints of tether's Docker driver (its state dir), beside the CNI attachments. */
  docker: { network: string; bridge: string; endpoint: string; hostVeth: string; addresses: string[] }[];
}

const alive = (pid: number) => {
  try { process.kill(pid, 0); return true; } catch (e) { return (e as NodeJS.ErrnoException).code === 'EPERM'; }
};

/**
 * The agent's health from its state file: {pid, updatedAt, ...}. Absent: not running. A dead PID or a file
 * not refreshed within AGENT_STALE_MS: stale (the agent crashed or hangs).
 */
export function agentHealth(file: string, now = Date.now()): AgentHealth {
  let text: string;
  try { text = readFileSync(file, 'utf8'); } catch (e) {
    const why = (e as NodeJS.ErrnoException).code === 'ENOENT' ? `no ${file}` : (e as Error).message;
    return { state: 'not running', file, reason: why };
  }
  let v: Record<string, unknown>;
  try { v = JSON.parse(text) as Record<string, unknown>; } catch (e) {
    return { state: 'stale', file, reason: `unreadable state: ${(e as Error).message}` };
  }
  const { pid, updatedAt, ...details } = v;
  const h: AgentHealth = { state: 'running', file, details };
  if (typeof pid === 'number') h.pid = pid;
  const updated = typeof updatedAt === 'string' ? Date.parse(updatedAt) : statSync(file).mtimeMs;
  h.updatedAt = new Date(updated).toISOString();
  if (typeof pid !== 'number' || !alive(pid)) return { ...h, state: 'stale', reason: `process ${String(pid)} is not running` };
  if (!(now - updated <= AGENT_STALE_MS)) return { ...h, state: 'stale', reason: `state not updated for ${Math.round((now - updated) / 1000)} s` };
  return h;
}


/** The Docker driver's endpoints from its state dir; none when it was never run here. */
async function dockerEndpoints(dir: string): Promise<NodeStatus['docker']> {
  if (!existsSync(join(dir, 'state'))) return [];
  const st = new DriverState(dir);
  const nets = new Map((await st.networks()).map((n) => [n.id, n]));
  return (await st.endpoints()).map((e) => ({ network: e.networkID.slice(0, 12), bridge: nets.get(e.networkID)?.bridge ?? '?', endpoint: e.endpointID.slice(0, 12), hostVeth: e.hostVeth, addresses: e.addresses }));
}

export async function nodeStatus(o: { confDir: string; cacheDir: string; agentState: string; dockerState?: string }): Promise<NodeStatus> {
  const entries = listCache(o.cacheDir);
  const networks: NetworkStatus[] = [];
  for (const f of scanConfDir(o.confDir)) {
    if (!f.list) { networks.push({ file: f.file, error: f.error, attachments: 0 }); continue; }
    const l = f.list;
    const n: NetworkStatus = { name: l.name, file: f.file, plugins: l.plugins.map((p) => p.type as string), attachments: entries.filter((e) => e.networkName === l.name).length };
    if (usesTetherIpam(l)) {
      try {
        const u = await ipamUsage(l);
        n.ipam = { store: u.store, rangeSets: u.rangeSets.map(({ ranges, used, size }) => ({ ranges, used, size })) };
      } catch (e) { n.ipam = { error: (e as Error).message }; }
    }
    networks.push(n);
  }
  return {
    node: hostname(),
    confDir: o.confDir,
    cacheDir: o.cacheDir,
    networks,
    attachments: entries.map((e) => ({ network: e.networkName, containerID: e.containerId, ifname: e.ifName, netns: e.netns ?? '', ips: ((e.result.ips ?? []) as { address: string }[]).map((i) => i.address) })),
    agent: agentHealth(o.agentState),
    docker: await dockerEndpoints(o.dockerState ?? DEFAULT_STATE_DIR),
  };
}

/** Peer mode's part of the agent's health file: the members with their last contact, and who owns what. */
function formatPeerDetails(d: Record<string, unknown>): string {
  const { peers, table: owners, ...rest } = d as { peers: { name: string; address: string; state: string; lastContactMs: number | null; blocks: number; free: number; wants: number }[]; table: { blocks: string; owner: string; version: number }[] };
  const ago = (ms: number | null) => (ms === null ? 'never' : ms === 0 ? '(this node)' : `${(ms / 1000).toFixed(1)} s ago`);
  return [
    ...Object.entries(rest).map(([k, v]) => `  ${k}: ${typeof v === 'object' ? JSON.stringify(v) : String(v)}`),
    '', table(['PEER', 'ADDRESS', 'STATE', 'LAST CONTACT', 'BLOCKS', 'FREE', 'WANTS'], peers.map((p) => [p.name, p.address, p.state, ago(p.lastContactMs), String(p.blocks), String(p.free), String(p.wants)])),
    '', table(['BLOCKS', 'OWNER', 'VERSION'], owners.map((o) => [o.blocks, o.owner, String(o.version)])),
  ].join('\n');
}

export function formatNodeStatus(s: NodeStatus): string {
  const a = s.agent;
  const details = (d: Record<string, unknown>) => (d.mode === 'peers' && Array.isArray(d.peers) && Array.isArray(d.table) ? `\n${formatPeerDetails(d)}`
    : `\n  ${Object.entries(d).map(([k, v]) => `${k}: ${typeof v === 'object' ? JSON.stringify(v) : String(v)}`).join('\n  ')}`);
  const agent = a.state === 'running'
    ? `running (pid ${a.pid}, updated ${a.updatedAt})${a.details && Object.keys(a.details).length ? details(a.details) : ''}`
    : `${a.state} (${a.reason})`;
  const ipam = (n: NetworkStatus) => !n.ipam ? '-' : 'error' in n.ipam ? `error: ${n.ipam.error}` : n.ipam.rangeSets.map((r) => `${r.ranges}: ${r.used}/${r.size}`).join('; ');
  const nets = s.networks.length
    ? table(['NETWORK', 'PLUGINS', 'ATTACHMENTS', 'IPAM (used/size)', 'FILE'], s.networks.map((n) => n.error
      ? ['(invalid)', '', '', '', n.error ?? n.file]
      : [n.name!, n.plugins!.join(' -> '), String(n.attachments), ipam(n), n.file]))
    : `no configurations in ${s.confDir}`;
  // Attachments the cache holds for networks no longer configured are worth a line: they leak addresses.
  const known = new Set(s.networks.map((n) => n.name));
  const orphans = s.attachments.filter((x) => !known.has(x.network));
  return [
    `node ${s.node}`,
    `agent (tetherd): ${agent}`,
    `attachments: ${s.attachments.length} in ${s.cacheDir}/results${orphans.length ? `, ${orphans.length} of networks not in ${s.confDir}: ${orphans.map((x) => `${x.network}/${x.containerID}`).join(', ')}` : ''}`,
    '',
    nets,
    ...(s.docker.length ? ['', table(['DOCKER NETWORK', 'BRIDGE', 'ENDPOINT', 'HOST VETH', 'ADDRESSES'], s.docker.map((d) => [d.network, d.bridge, d.endpoint, d.hostVeth, d.addresses.join(',')]))] : []),
  ].join('\n');
}
