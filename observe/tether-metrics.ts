import { closeSync, openSync, readSync, statSync } from 'node:fs';
import { scanConfDir } from '../lib/libcni/conf.js';
import { ipamUsage, usesTetherIpam } from '../ipam/usage.js';
import { Registry } from '../lib/metrics.js';

// The metrics tetherd exposes, defined in one place so names and labels stay consistent, plus two
// collectors that need no agent internals: IPAM use read from the store, and the plugins' operations
// read from their log (a plugin lives ~20 ms: it cannot be scraped, but it writes one line per operation).

export function tetherMetrics(registry = new Registry()) {
  const r = registry;
  return {
    registry,
    buildInfo: r.gauge('tether_build_info', { help: 'Always 1; the labels say which tether runs.', labelNames: ['version'] }),
    bgpSessions: r.gauge('tether_bgp_sessions', { help: 'BGP sessions by FSM state (idle, connect, active, opensent, openconfirm, established).', labelNames: ['state'] }),
    bgpSessionUp: r.gauge('tether_bgp_session_up', { help: '1 when the session with this peer is established, else 0.', labelNames: ['peer'] }),
    bgpSessionTransitions: r.counter('tether_bgp_session_transitions_total', { help: 'BGP FSM state changes per peer, from one state to another (every connection to the peer counts).', labelNames: ['peer', 'from', 'to'] }),
    routes: r.gauge('tether_routes', { help: 'Routes tether has programmed into the kernel, by where they came from (bgp, vxlan, local).', labelNames: ['source'] }),
    routeChanges: r.counter('tether_route_changes_total', { help: 'Routes added or removed in the kernel.', labelNames: ['source', 'op'] }),
    leases: r.gauge('tether_node_leases', { help: 'Node leases in the store, live or expired.', labelNames: ['state'] }),
    remoteNodes: r.gauge('tether_remote_nodes', { help: 'Other nodes in the store (known) and programmed into this node\'s kernel (programmed).', labelNames: ['state'] }),
    resyncs: r.counter('tether_agent_resyncs_total', { help: 'Full reconciles of the kernel against the store, by why (listed the store, device recreated, after a failed update).', labelNames: ['reason'] }),
    watchRestarts: r.counter('tether_agent_watch_restarts_total', { help: 'Store watches reopened: broken (resumed from the last revision) or compacted (listed again).', labelNames: ['reason'] }),
    leaseRenewals: r.counter('tether_node_lease_renewals_total', { help: 'Renewals of this node\'s lease, by result (ok, error).', labelNames: ['result'] }),
    ipamUsed: r.gauge('tether_ipam_addresses_used', { help: 'Addresses allocated, per network and range set.', labelNames: ['network', 'range_set'] }),
    ipamSize: r.gauge('tether_ipam_addresses', { help: 'Addresses a range set can hand out.', labelNames: ['network', 'range_set'] }),
    ipamBlocks: r.gauge('tether_ipam_blocks', { help: 'IPAM blocks claimed, per network and node.', labelNames: ['network', 'node'] }),
    peerMessages: r.counter('tether_peer_messages_total', { help: 'Gossip datagrams received in peer mode: accepted, or dropped as malformed, forged (bad MAC), replayed, stale (send time outside the window), self or other_network.', labelNames: ['result'] }),
    peerMembers: r.gauge('tether_peer_members', { help: 'Members known in peer mode, by state (live, reachable: heard within the vote silence, left, retired).', labelNames: ['state'] }),
    peerBlocks: r.gauge('tether_peer_blocks', { help: 'Blocks of the pool in peer mode: owned by this node, free (empty) on it, in the whole pool.', labelNames: ['kind'] }),
    errors: r.counter('tether_errors_total', { help: 'Errors by component and CNI error code (or a short reason for the agent).', labelNames: ['component', 'code'] }),
    cniOperations: r.counter('tether_cni_operations_total', { help: 'Plugin operations read from the plugins\' log, by plugin, command and result.', labelNames: ['plugin', 'command', 'result'] }),
    cniOperationSeconds: r.histogram('tether_cni_operation_duration_seconds', { help: 'Plugin operation latency, as each plugin measured it.', labelNames: ['plugin', 'command'] }),
    agentOperationSeconds: r.histogram('tether_agent_operation_duration_seconds', { help: 'Agent operations (route sync, lease renewal, store calls).', labelNames: ['operation'] }),
  };
}

export type TetherMetrics = ReturnType<typeof tetherMetrics>;

/**
 * Sets the IPAM gauges from every tether-ipam network in confDir at each scrape. A network whose store
 * cannot be read counts as an error of component "ipam" and keeps its last values.
 */
export function collectIpam(m: TetherMetrics, confDir: string): void {
  m.registry.collect(async () => {
    for (const f of scanConfDir(confDir)) {
      const l = f.list;
      if (!l || !usesTetherIpam(l)) continue;
      let u;
      try { u = await ipamUsage(l); } catch { m.errors.inc({ component: 'ipam', code: 'store' }); continue; }
      for (const s of u.rangeSets) {
        m.ipamUsed.set({ network: l.name, range_set: s.ranges }, s.used);
        m.ipamSize.set({ network: l.name, range_set: s.ranges }, s.size);
      }
      const perNode = new Map<string, number>();
      for (const b of u.blocks) perNode.set(b.node, (perNode.get(b.node) ?? 0) + 1);
      for (const [node, n] of perNode) m.ipamBlocks.set({ network: l.name, node }, n);
    }
  });
}

interface OpLine { msg?: string; plugin?: string; command?: string; result?: string; duration_ms?: number; error?: { code?: number } }

/**
 * Follows the plugins' operation log (lib/log.ts) from its current end: each call reads the lines added
 * since the last one and counts them. Survives rotation: when the path names a new file, the rest of the
 * old one is read from wherever rotation put it (file.k), then the newer rotated files, then the new one.
 * Lines are lost only if the file it was reading has rotated off the end between two polls.
 */
export class OpLogFollower {
  private ino = -1;
  private offset = 0;
  private partial = '';

  constructor(private readonly file: string, private readonly m: TetherMetrics, fromStart = false) {
    try {
      const st = statSync(file);
      this.ino = st.ino;
      this.offset = fromStart ? 0 : st.size;
    } catch { /* not there yet: read it from the start once it appears */ }
  }

  /** Registers poll() as a collector, so every scrape is up to date. */
  attach(): this { this.m.registry.collect(() => { this.poll(); }); return this; }

  poll(): number {
    let st;
    try { st = statSync(this.file); } catch { return 0; }
    let n = 0;
    if (st.ino !== this.ino) {
      // Rotated (maybe several times) since the last poll: finish the file we were reading, wherever
      // it went (file.k), then every newer rotated file, then the new one.
      const rotated: string[] = [];
      let found = false;
      for (let k = 1; this.ino >= 0 && !found; k++) {
        let ino: number;
        try { ino = statSync(`${this.file}.${k}`).ino; } catch { break; }
        rotated.unshift(`${this.file}.${k}`);
        found = ino === this.ino;
      }
      if (!found) rotated.length = 0; // ours rotated away entirely: its remaining lines are gone
      for (const [i, f] of rotated.entries()) {
        if (i > 0) { this.offset = 0; this.partial = ''; }
        n += this.readFrom(f);
      }
      this.ino = st.ino;
      this.offset = 0;
      this.partial = '';
    } else if (st.size < this.offset) {
      this.offset = 0; // truncated in place
      this.partial = '';
    }
    return n + this.readFrom(this.file);
  }

  private readFrom(path: string): number {
    let fd: number;
    try { fd = openSync(path, 'r'); } catch { return 0; }
    let text = this.partial;
    try {
      const buf = Buffer.alloc(64 * 1024);
      for (let got; (got = readSync(fd, buf, 0, buf.length, this.offset)) > 0;) {
        this.offset += got;
        text += buf.toString('utf8', 0, got);
      }
    } finally { closeSync(fd); }
    const lines = text.split('\n');
    this.partial = lines.pop() ?? '';
    let n = 0;
    for (const line of lines) if (this.count(line)) n++;
    return n;
  }

  private count(line: string): boolean {
    let v: OpLine;
    try { v = JSON.parse(line) as OpLine; } catch { return false; }
    if (v.msg !== 'operation' || !v.plugin || !v.command) return false;
    const result = v.result === 'ok' ? 'ok' : 'error';
    this.m.cniOperations.inc({ plugin: v.plugin, command: v.command, result });
    if (typeof v.duration_ms === 'number') this.m.cniOperationSeconds.observe({ plugin: v.plugin, command: v.command }, v.duration_ms / 1000);
    if (result === 'error') this.m.errors.inc({ component: v.plugin, code: String(v.error?.code ?? 'unknown') });
    return true;
  }
}
