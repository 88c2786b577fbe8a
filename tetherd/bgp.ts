import { writeSync } from 'node:fs';
import { ipamEtcdPrefix } from '../ipam/store.js';
import { KernelRoutes, Speaker, statusWriter, type NodeInfo, type RouteSink, type SessionTransition } from '../lib/bgp/index.js';
import { formatCIDR, formatIP, type CIDR, type IP } from '../lib/ip/addr.js';
import { createLogger, type Logger } from '../lib/log.js';
import { RT_SCOPE_UNIVERSE } from '../lib/netlink/constants.js';
import { Netlink } from '../lib/netlink/handle.js';
import { sysctlSet } from '../lib/netns/sysctl.js';
import { EtcdKV, type WatchEvent } from '../lib/store/etcd.js';
import type { Entry } from '../lib/store/kv.js';
import { RTPROT_TETHER_POD } from '../lib/route-protocols.js';
import { parseBgpAgentConfig, type BgpAgentConfig } from './bgp-config.js';
import { announcementChanges, BLOCKS, NODES, nodeKey, parseBlock, parseNodeRecord, peersFromTopology, planAnnouncements, type Block, type BgpNodeRecord } from './bgp-plan.js';
import { AgentEvents } from './events.js';
import { Follower } from './follow.js';
import { bgpHealth, keepHealthFile, parseObserveConfig, startBgpMetrics, type BgpView } from './observe.js';
import { TETHER_VERSION } from '../lib/version.js';
import { LeaseKeeper } from './lease.js';
import { Reclaimer } from './reclaim.js';
import { detectUnderlay } from './underlay.js';

/**
 * What the speaker does to the kernel, through KernelRoutes, until detach(): on SIGTERM the speaker
 * ends its sessions, and the routes it learned must stay (pods keep forwarding while the agent
 * restarts; the next run replaces them and reconciles once its peers are back).
 */
class DetachableSink implements RouteSink {
  private attached = true;
  constructor(private readonly k: KernelRoutes) {}
  detach(): void { this.attached = false; }
  install(p: CIDR, nh: IP): void { if (this.attached) this.k.install(p, nh); }
  remove(p: CIDR): void { if (this.attached) this.k.remove(p); }
  blackhole(p: CIDR, on: boolean): void { if (this.attached) this.k.blackhole(p, on); }
}

const registryPrefix = (c: BgpAgentConfig) => `${c.etcd!.prefix}/bgp/${c.network}/`;

/**
 * Where the nodes and blocks come from without etcd ("store": "peers"): the peer agent's members and
 * ownership table, with a call whenever either changed.
 */
export interface BgpFeed {
  nodes(): NodeInfo[];
  blocks(): Block[];
  onChange(fn: () => void): void;
}

/**
 * The node agent in BGP mode (Calico style, no overlay): registers the node under a lease, peers with
 * the other nodes (or route reflectors), announces the node's IPAM blocks (aggregate + blackhole) and
 * its borrowed pod addresses (/32, /128), and installs every other node's announcements under
 * protocol 245.
 */
export class BgpAgent {
  private readonly log: Logger;
  private readonly registry!: EtcdKV;
  private readonly ipam!: EtcdKV;
  /** Set once the node list has been read (from the registry, or the feed). */
  private following = false;
  private nl!: Netlink;
  private speaker!: Speaker;
  private kernel!: KernelRoutes;
  private sink!: DetachableSink;
  private self!: NodeInfo;
  private routerId = '';
  private readonly nodes = new Map<string, NodeInfo>();
  private readonly blocks = new Map<string, Block>();
  /** Announced prefixes -> blackhole. */
  private readonly announced = new Map<string, boolean>();
  private nodeFollower?: Follower;
  private blockFollower?: Follower;
  private lease!: LeaseKeeper;
  private timers: NodeJS.Timeout[] = [];
  private status?: { flush(): void; close(): void };
  private stopping = false;
  private publishing = false;
  /** What an operator counts (metrics subscribe): lease renewals, watch restarts, store errors. */
  readonly events = new AgentEvents();
  private reconciled = false;
  private reconcileQueued = false;
  private reclaimer?: Reclaimer;
  private reclaiming = false;
  /** What the last kernel repair could not put back, so a lasting failure is logged once. */
  private repairFailed = '';

  constructor(private readonly c: BgpAgentConfig, private readonly feed?: BgpFeed) {
    this.log = createLogger({ component: 'tetherd', file: c.logFile, level: c.logLevel });
    if (feed) return;
    this.registry = new EtcdKV({ ...c.etcd!, prefix: registryPrefix(c) });
    this.ipam = new EtcdKV({ ...c.ipam.etcd!, prefix: ipamEtcdPrefix(c.ipam.etcd!.prefix, c.ipam.network) });
  }

  /** Peer mode: the nodes and blocks as the peer agent knows them now. */
  private fromFeed(): void {
    if (this.stopping || !this.feed) return;
    this.nodes.clear();
    for (const n of this.feed.nodes()) if (n.name !== this.c.nodeName) this.nodes.set(n.name, n);
    this.blocks.clear();
    for (const b of this.feed.blocks()) this.blocks.set(formatCIDR(b.cidr), b);
    this.applyPeers();
    this.replan();
    this.maybeReconcile();
  }

  /** For metrics and the health file: this node, its sessions and its routing table right now. */
  view(): BgpView {
    return {
      node: this.c.nodeName, network: this.c.network, asn: this.c.asn, routerId: this.routerId,
      nodes: [...this.nodes.keys()].filter((n) => n !== this.c.nodeName).length,
      peers: this.speaker ? this.speaker.peers() : [],
      routes: this.speaker ? this.speaker.routes() : { local: [], learned: [] },
    };
  }

  get record(): BgpNodeRecord {
    return { node: this.c.nodeName, underlayIP: this.self.address, asn: this.c.asn, routerId: this.routerId, backend: 'bgp' };
  }

  async start(): Promise<void> {
    this.nl = Netlink.open();
    const underlay = detectUnderlay(this.nl, { interface: this.c.underlayInterface, ip: this.c.underlayIP });
    const address = formatIP(underlay.address.ip);
    this.routerId = this.c.routerId ?? address;
    this.self = { name: this.c.nodeName, address, asn: this.c.asn };
    // The node forwards between pods' veths and the underlay (tether-bgp-route sets these too, per ADD).
    sysctlSet('net/ipv4/ip_forward', 1);
    sysctlSet('net/ipv6/conf/all/forwarding', 1);
    // Sessions run over IPv4; IPv6 pod prefixes go out over them with the underlay's IPv6 address as next hop.
    const v6 = this.nl.addrs({ family: 6, index: underlay.link.index }).find((a) => a.scope === RT_SCOPE_UNIVERSE);
    this.kernel = new KernelRoutes(this.nl);
    this.sink = new DetachableSink(this.kernel);
    this.speaker = new Speaker({
      asn: this.c.asn, routerId: this.routerId, peers: [], sink: this.sink, log: this.log, restartTime: this.c.restartTime,
      nextHops: v6 ? { v6: formatIP(v6.cidr.ip) } : undefined,
      // Our blackholes and the pods' routes stay in the kernel when tetherd stops: peers may keep our routes meanwhile.
      keepsForwarding: this.c.gracefulRestart,
      listen: [{ address: this.c.listen.address ?? address, port: this.c.listen.port }],
    });
    this.status = statusWriter(this.c.statusFile, this.speaker, () => ({ asn: this.c.asn, routerId: this.routerId }), this.log);
    this.speaker.on('change', () => this.maybeReconcile());
    this.speaker.on('transition', (x: SessionTransition) => {
      this.log.debug('session state', { peer: x.peer, from: x.from, to: x.to });
      this.events.emit({ kind: 'bgp-transition', peer: x.peer, from: x.from.toLowerCase(), to: x.to.toLowerCase() });
    });
    if (this.feed) {
      // No registry: the peer agent's members are the nodes, its table the blocks.
      this.following = true;
      this.fromFeed();
      this.feed.onChange(() => this.fromFeed());
      await this.speaker.start();
      this.timers.push(setInterval(() => { this.replan(); this.repairKernel(); }, this.c.hostRoutePollMs));
      this.timers.push(setTimeout(() => this.reconcileKernel('the restart hold ran out'), this.c.restartHoldMs));
      this.maybeReconcile();
      this.status.flush();
      this.log.info('BGP mode up on peers', { node: this.c.nodeName, address, asn: this.c.asn, routerId: this.routerId, topology: this.c.topology.kind });
      return;
    }
    this.lease = new LeaseKeeper(this.registry, this.c.leaseTTL, this.log, () => this.publish(), this.events);
    await this.publish();
    // Our table is complete before any session starts: a peer that kept our routes over a restart
    // sweeps what our End-of-RIB did not re-announce.
    this.blockFollower = new Follower(this.ipam, BLOCKS, { listed: (e) => this.blocksListed(e), events: (e) => this.blockEvents(e) }, this.log, this.c.resyncIntervalMs, this.events);
    await this.blockFollower.start();
    await this.speaker.start();
    this.nodeFollower = new Follower(this.registry, NODES, { listed: (e) => this.nodesListed(e), events: (e) => this.nodeEvents(e) }, this.log, this.c.resyncIntervalMs, this.events);
    this.following = true;
    await this.nodeFollower.start();
    this.timers.push(setInterval(() => { this.replan(); this.repairKernel(); }, this.c.hostRoutePollMs));
    if (this.c.reclaimAfter > 0) {
      this.reclaimer = new Reclaimer(this.registry, this.ipam, this.c.nodeName, this.c.reclaimAfter * 1000, this.log);
      await this.reclaimer.join();
      this.timers.push(setInterval(() => void this.reclaimTick(), this.c.reclaimIntervalMs));
    }
    this.timers.push(setTimeout(() => this.reconcileKernel('the restart hold ran out'), this.c.restartHoldMs));
    this.maybeReconcile();
    this.status.flush();
    this.log.info('BGP mode up', { node: this.c.nodeName, address, asn: this.c.asn, routerId: this.routerId, topology: this.c.topology.kind });
  }

  /** Writes the node record under a fresh lease; the old lease (a previous run's, or an expired one) is revoked. */
  private async publish(): Promise<void> {
    if (this.publishing) return;
    this.publishing = true;
    try {
      const key = nodeKey(this.c.nodeName);
      const old = (await this.registry.rangeWithRevision(key)).entries.get(key);
      const lease = await this.registry.leaseGrant(this.c.leaseTTL);
      await this.registry.txn({ if: [], put: [{ key, value: JSON.stringify(this.record) }] }, { lease });
      if (old?.lease && old.lease !== lease) await this.registry.leaseRevoke(old.lease).catch(() => {});
      this.lease.hold(lease);
      this.log.info('node registered', { key, lease, ttl: this.c.leaseTTL });
    } finally { this.publishing = false; }
  }

  /**
   * Learned routes an earlier run left in the kernel stay until this run's sessions are all back (they
   * are then replaced by what the peers announce), or the restart hold runs out; the rest is removed.
   */
  private maybeReconcile(): void {
    if (this.reconciled || !this.following) return;
    const peers = this.speaker.peers();
    if (peers.length && peers.every((p) => p.state === 'Established')) {
      if (this.reconcileQueued) return;
      this.reconcileQueued = true;
      // The peers' tables follow their OPEN within moments; give them that moment.
      this.timers.push(setTimeout(() => this.reconcileKernel('every peer is back'), 1000));
    } else if (!peers.length && this.c.topology.kind === 'mesh' && this.nodes.size === 0) {
      this.reconcileKernel('no other node is registered');
    }
  }

  private reconcileKernel(why: string): void {
    if (this.reconciled || this.stopping) return;
    this.reconciled = true;
    try {
      const removed = this.kernel.reconcile();
      this.log.info('kernel reconciled', { why, removed: removed.map((r) => (r.dst ? formatCIDR(r.dst) : 'default')) });
    } catch (e) {
      this.log.error('kernel reconcile failed', { error: (e as Error).message });
    }
  }

  private nodesListed(entries: Map<string, Entry>): void {
    this.nodes.clear();
    for (const [k, e] of entries) this.nodeEvents([{ type: 'put', key: k, value: e.value, version: 0 }], false);
    if (!entries.has(nodeKey(this.c.nodeName)) && !this.stopping && !this.feed) void this.publish().catch((e) => this.log.error('registering again failed', { error: (e as Error).message }));
    this.applyPeers();
  }

  private nodeEvents(evs: WatchEvent[], apply = true): void {
    for (const ev of evs) {
      const name = ev.key.slice(NODES.length);
      if (name === this.c.nodeName) {
        if (!apply) continue;
        if (ev.type === 'delete' || ev.value !== JSON.stringify(this.record)) {
          if (this.stopping) continue;
          this.log.warn(ev.type === 'delete' ? 'our node record was deleted; registering again' : 'our node record was changed by someone else; publishing ours again');
          void this.publish().catch((e) => this.log.error('registering again failed', { error: (e as Error).message }));
        }
        continue;
      }
      const r = ev.type === 'put' ? parseNodeRecord(ev.value) : null;
      if (r) this.nodes.set(name, { name: r.node, address: r.underlayIP, asn: r.asn });
      else this.nodes.delete(name);
    }
    if (apply) this.applyPeers();
  }

  private applyPeers(): void {
    const peers = peersFromTopology(this.c, this.self, [...this.nodes.values()]);
    this.speaker.setPeers(peers);
    this.log.debug('peers', { peers: peers.map((p) => `${p.address}${p.passive ? ' (passive)' : ''}`) });
  }

  private blocksListed(entries: Map<string, Entry>): void {
    this.blocks.clear();
    for (const [k, e] of entries) { const b = parseBlock(e.value); if (b) this.blocks.set(k, b); }
    this.replan();
  }

  private blockEvents(evs: WatchEvent[]): void {
    for (const ev of evs) {
      const b = ev.type === 'put' ? parseBlock(ev.value) : null;
      if (b) this.blocks.set(ev.key, b); else this.blocks.delete(ev.key);
    }
    this.replan();
  }

  /** Dead nodes' blocks back to the pool (tetherd/reclaim.ts); membership is re-asserted each time, in case a reclaim raced our return. */
  private async reclaimTick(): Promise<void> {
    if (this.stopping || this.reclaiming || !this.reclaimer) return;
    this.reclaiming = true;
    try {
      await this.reclaimer.join();
      await this.reclaimer.round(new Set([...this.nodes.keys(), this.c.nodeName]));
    } catch (e) {
      this.log.error('reclaiming dead nodes\' blocks failed; next time', { error: (e as Error).message });
    } finally { this.reclaiming = false; }
  }

  /** The node's pod routes (tether-bgp-route's, RTPROT_TETHER_POD), both families. */
  private podRoutes(): CIDR[] {
    return ([4, 6] as const).flatMap((f) => this.nl.routes(f, { protocol: RTPROT_TETHER_POD })).map((r) => r.dst).filter((d): d is CIDR => d !== null);
  }

  private replan(): void {
    if (this.stopping) return;
    let routes: CIDR[];
    try { routes = this.podRoutes(); } catch (e) { this.log.error('reading pod routes failed', { error: (e as Error).message }); return; }
    const want = planAnnouncements(this.c.nodeName, [...this.blocks.values()], routes);
    const { announce, withdraw } = announcementChanges(this.announced, want);
    for (const k of withdraw) { this.speaker.withdraw(k); this.announced.delete(k); }
    for (const a of announce) { this.speaker.announce(a.prefix, { blackhole: a.blackhole }); this.announced.set(formatCIDR(a.prefix), a.blackhole); }
    if (announce.length || withdraw.length) {
      this.log.info('announcements', { announce: announce.map((a) => `${formatCIDR(a.prefix)}${a.blackhole ? ' (block)' : ' (borrowed)'}`), withdraw });
    }
  }

  /**
   * The kernel drops our routes behind our back when a link they go through is set down, and does not
   * bring them back with the link, while the BGP session over it may well survive: what the speaker
   * installed and the kernel lost is put back (each tick, so as soon as the next hop is reachable again).
   */
  private repairKernel(): void {
    if (this.stopping) return;
    let r: ReturnType<KernelRoutes['repair']>;
    try { r = this.kernel.repair(); } catch (e) {
      this.log.error('checking the kernel routes failed', { error: (e as Error).message });
      this.events.emit({ kind: 'error', code: 'kernel_repair_failed' });
      return;
    }
    if (r.restored.length) {
      this.log.warn('kernel routes restored (a link went down, or someone removed or changed them)', { routes: r.restored.map((x) => formatCIDR(x.dst!)) });
      this.events.emit({ kind: 'resync', reason: 'kernel routes restored' });
    }
    // While the link stays down every tick fails the same way: said once, not five times a second.
    const failed = r.failed.map((f) => `${formatCIDR(f.route.dst!)}: ${f.error}`).join('; ');
    if (failed && failed !== this.repairFailed) this.log.warn('kernel routes cannot be restored yet', { failed });
    this.repairFailed = failed;
  }

  /**
   * SIGTERM: sessions end with Cease; the node record and its lease stay (a restart takes them over),
   * and so do the kernel's routes: our blackholes, the pods' routes, and what we learned.
   */
  stop(): void {
    this.stopping = true;
    for (const t of this.timers) clearTimeout(t);
    this.lease?.stop();
    this.nodeFollower?.stop();
    this.blockFollower?.stop();
    this.sink?.detach();
    this.speaker?.stop();
    this.status?.flush();
    this.status?.close();
    this.nl?.close();
    this.log.info('stopped; routes, blackholes and the node record left in place');
  }
}

/** `tetherd leave`: the node record goes (its lease revoked), so every other node drops its sessions with us. */
export async function leaveBgp(c: BgpAgentConfig): Promise<boolean> {
  const kv = new EtcdKV({ ...c.etcd!, prefix: registryPrefix(c) });
  const key = nodeKey(c.nodeName);
  const e = (await kv.rangeWithRevision(key)).entries.get(key);
  if (!e) return false;
  await kv.txn({ if: [{ key, version: e.version }], del: [key] });
  if (e.lease) await kv.leaseRevoke(e.lease);
  return true;
}

/** tetherd's run/leave for a configuration (the file's JSON) with "mode": "bgp". */
export async function bgpMain(command: string, raw: unknown): Promise<number> {
  const c = parseBgpAgentConfig(raw);
  if (command === 'leave') {
    const gone = await leaveBgp(c);
    writeSync(1, gone ? `tetherd: node ${c.nodeName} left the BGP mesh\n` : `tetherd: node ${c.nodeName} is not registered\n`);
    return 0;
  }
  const o = parseObserveConfig(raw);
  const agent = new BgpAgent(c);
  const view = () => agent.view();
  const metrics = await startBgpMetrics(o, TETHER_VERSION, view, agent.events);
  let health: { stop(): void } | undefined;
  const done = new Promise<number>((resolve) => {
    for (const sig of ['SIGTERM', 'SIGINT'] as const) {
      process.once(sig, () => { agent.stop(); health?.stop(); void metrics.stop().then(() => setTimeout(() => resolve(0), 200)); });
    }
  });
  await agent.start();
  health = keepHealthFile(o, metrics, bgpHealth(view));
  writeSync(1, `tetherd: ready: node ${c.nodeName} in BGP mode, AS ${c.asn}${metrics.address ? ` metrics http://${metrics.address}/metrics` : ''} health ${o.healthFile}\n`);
  return done;
}
