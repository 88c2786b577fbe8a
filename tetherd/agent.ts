import { formatCIDR, formatIP, parseCIDR, type CIDR } from '../lib/ip/addr.js';
import { formatMAC } from '../lib/ip/mac.js';
import { createLogger, type Logger } from '../lib/log.js';
import { Netlink } from '../lib/netlink/handle.js';
import { EtcdKV, type WatchEvent } from '../lib/store/etcd.js';
import type { Entry } from '../lib/store/kv.js';
import type { AgentConfig } from './config.js';
import { apply, describeTarget, keepDevice, reconcile, routesAdrift, type Devices } from './dataplane.js';
import { stableMAC, type DeviceSpec } from './device.js';

export { stableMAC };
import { describeOp, programmingFor, transition, type LocalView, type Programming } from './plan.js';
import { readNodeState, writeNodeState, type NodeState } from '../lib/node-state.js';
import { chooseSubnet, parseRecord, SUBNETS, subnetKey, type NodeRecord, type Peer } from './subnets.js';
import { detectUnderlay, overhead, type Underlay } from './underlay.js';
import { Follower } from './follow.js';
import { AgentEvents } from './events.js';
import { LeaseKeeper } from './lease.js';

/**
 * The node agent in VXLAN mode: registers the node and its subnet in etcd under a lease, keeps the
 * VXLAN device as configured, and programs every other node's subnet, following the store's watch.
 */
export class Agent {
  private readonly c: AgentConfig;
  private readonly log: Logger;
  private readonly kv: EtcdKV;
  private nl!: Netlink;
  private underlay!: Underlay;
  private spec!: DeviceSpec;
  private devices!: Devices;
  private subnet!: CIDR;
  private leaseID?: string;
  private mtu = 0;
  /** What is in the kernel now for each remote node, by subnet key. */
  private readonly programmed = new Map<string, Programming>();
  private readonly peers = new Map<string, Peer>();
  private follower?: Follower;
  private lease!: LeaseKeeper;
  private timers: NodeJS.Timeout[] = [];
  private stopping = false;
  private reacquiring = false;
  /** Why missing routes could not be put back at the last check (logged once until it changes). */
  private adriftFailure = '';
  /** What an operator counts (metrics subscribe), beside the words the log gets. */
  readonly events = new AgentEvents();

  constructor(c: AgentConfig) {
    this.c = c;
    this.log = createLogger({ component: 'tetherd', file: c.logFile, level: c.logLevel });
    this.kv = new EtcdKV({ ...c.etcd, prefix: `${c.etcd.prefix}/vxlan/${c.network}/` });
    this.lease = new LeaseKeeper(this.kv, c.leaseTTL, this.log, () => this.reacquire(), this.events);
  }

  get state(): NodeState {
    return {
      node: this.c.nodeName, network: this.c.network, pool: formatCIDR(this.c.pool), subnet: formatCIDR(this.subnet), mtu: this.mtu,
      underlayIP: formatIP(this.underlay.address.ip), vtepMAC: formatMAC(this.spec.mac), vni: this.c.vni, device: this.c.device,
      leaseID: this.leaseID, updated: new Date().toISOString(),
    };
  }

  async start(): Promise<void> {
    this.nl = Netlink.open();
    this.underlay = detectUnderlay(this.nl, { interface: this.c.underlayInterface, ip: this.c.underlayIP, family: this.c.underlayFamily });
    const family = this.underlay.address.ip.family;
    this.mtu = this.c.mtu ?? this.underlay.link.mtu - overhead(family);
    this.log.info('underlay', { interface: this.underlay.link.name, address: formatCIDR(this.underlay.address), mtu: this.underlay.link.mtu, overlayMTU: this.mtu });
    const previous = readNodeState(this.c.stateFile);
    const mac = previous?.node === this.c.nodeName && previous.vni === this.c.vni ? previous.vtepMAC : formatMAC(stableMAC(this.c.nodeName, this.c.vni));
    await this.acquire(previous?.node === this.c.nodeName ? parseCIDR(previous.subnet) ?? undefined : undefined, mac);
    this.ensureDevice(true);
    writeNodeState(this.c.stateFile, this.state);
    this.log.info('published node state', { file: this.c.stateFile, subnet: formatCIDR(this.subnet), mtu: this.mtu });
    // Lists the subnets, programs them all, then follows changes (with a periodic re-list and reconcile under the watch).
    this.follower = new Follower(this.kv, SUBNETS, { listed: (e) => this.listed(e), events: (e) => this.onEvents(e) }, this.log, this.c.resyncIntervalMs, this.events);
    await this.follower.start();
    this.timers.push(setInterval(() => this.checkDevice(), this.c.checkIntervalMs));
  }

  /** SIGTERM: stop following the store, leave the device, the routes and the lease as they are. */
  stop(): void {
    this.stopping = true;
    for (const t of this.timers) clearInterval(t);
    this.lease.stop();
    this.follower?.stop();
    this.nl?.close();
    this.log.info('stopped; dataplane and lease left in place');
  }

  private record(mac: string): NodeRecord {
    return { node: this.c.nodeName, underlayIP: formatIP(this.underlay.address.ip), vtepMAC: mac, vni: this.c.vni, backend: 'vxlan' };
  }

  /** Takes (or takes back) this node's subnet under a fresh lease: one conditional transaction, retried on races. */
  private async acquire(previous: CIDR | undefined, mac: string): Promise<void> {
    for (let attempt = 0; attempt < 10; attempt++) {
      const { entries } = await this.kv.rangeWithRevision(SUBNETS);
      const taken: Peer[] = [];
      for (const [k, e] of entries) { const p = parseRecord(k, e.value); if (p) taken.push(p); }
      const pick = chooseSubnet(taken, this.c.nodeName, this.c.pool, this.c.subnetLen, previous);
      if (!pick) throw new Error(`no free /${this.c.subnetLen} left in ${formatCIDR(this.c.pool)}`);
      const key = subnetKey(pick.subnet);
      const lease = await this.kv.leaseGrant(this.c.leaseTTL);
      const current = entries.get(key);
      const ok = await this.kv.txn({ if: [{ key, version: pick.reclaimed === 'store' ? current!.version : 0 }], put: [{ key, value: JSON.stringify(this.record(mac)) }] }, { lease });
      if (!ok) { await this.kv.leaseRevoke(lease); continue; }
      if (pick.reclaimed === 'store' && current && 'lease' in current && current.lease && current.lease !== lease) {
        await this.kv.leaseRevoke(current.lease as string).catch(() => {}); // the old lease now holds no key
      }
      this.subnet = pick.subnet;
      this.leaseID = lease;
      this.lease.hold(lease);
      this.spec = {
        name: this.c.device, vni: this.c.vni, port: this.c.port, local: this.underlay.address.ip, underlayIndex: this.underlay.link.index,
        mtu: this.mtu, mac: Buffer.from(mac.split(':').map((x) => parseInt(x, 16))), address: { ip: pick.subnet.ip, prefix: 32 },
        pool: this.c.pool, txChecksumOffload: this.c.txChecksumOffload,
      };
      this.devices = { vxlan: 0, underlay: this.underlay.link.index };
      this.log.info('subnet', { subnet: formatCIDR(pick.subnet), how: { store: 'reclaimed from the store', state: 'reclaimed from the state file', new: 'newly allocated' }[pick.reclaimed], lease, ttl: this.c.leaseTTL });
      return;
    }
    throw new Error('could not take a subnet: lost the race 10 times');
  }

  private async reacquire(): Promise<void> {
    if (this.reacquiring || this.stopping) return;
    this.reacquiring = true;
    try {
      const before = formatCIDR(this.subnet);
      await this.acquire(this.subnet, formatMAC(this.spec.mac));
      if (formatCIDR(this.subnet) !== before) {
        this.log.error('the node subnet changed: pods on the old subnet lose connectivity', { before, after: formatCIDR(this.subnet) });
        this.events.emit({ kind: 'error', code: 'subnet_changed' });
      }
      this.ensureDevice(false);
      writeNodeState(this.c.stateFile, this.state);
    } finally { this.reacquiring = false; }
  }

  private ensureDevice(initial: boolean): boolean {
    const { devices, created } = keepDevice(this.nl, this.spec, this.underlay.link.index, this.log, initial);
    this.devices = devices;
    return created;
  }

  /**
   * Cheap poll (one GETLINK, one route dump): a deleted or altered device is recreated and every peer
   * reprogrammed; routes the kernel lost (a link went down and took them) are put back at once rather
   * than at the next resync.
   */
  private checkDevice(): void {
    if (this.stopping || this.reacquiring) return;
    try {
      if (this.ensureDevice(false)) { this.fullReconcile('device recreated'); return; }
    } catch (e) {
      this.log.error('cannot restore the VXLAN device', { error: (e as Error).message });
      this.events.emit({ kind: 'error', code: 'device_restore_failed' });
      return;
    }
    let adrift: Programming[];
    try { adrift = routesAdrift(this.nl, this.devices, this.programmed.values()); } catch (e) {
      this.log.error('reading the routes failed', { error: (e as Error).message });
      return;
    }
    if (!adrift.length) { this.adriftFailure = ''; return; }
    const peers = adrift.map(describeTarget);
    try {
      this.fullReconcile('routes missing');
      this.log.warn('routes were missing from the kernel (a link went down, or someone removed them); put back', { peers });
      this.adriftFailure = '';
    } catch (e) {
      // While the link is still down the routes cannot go back: said once, tried again at every check.
      const why = (e as Error).message;
      if (why !== this.adriftFailure) this.log.warn('routes missing from the kernel cannot be put back yet', { peers, error: why });
      this.adriftFailure = why;
    }
  }

  private local(): LocalView { return { underlay: this.underlay.address, directRouting: this.c.directRouting }; }

  private fullReconcile(why: string): void {
    const want = new Map<string, Programming>();
    for (const [k, p] of this.peers) { const prog = programmingFor(p, this.local()); if (prog) want.set(k, prog); }
    const ops = reconcile(this.nl, this.devices, [...want.values()]);
    this.programmed.clear();
    for (const [k, p] of want) this.programmed.set(k, p);
    this.events.emit({ kind: 'resync', reason: why });
    this.log.info('reconciled', { why, peers: [...want.values()].map(describeTarget), removedStale: ops.filter((o) => o.op.endsWith('-del')).map(describeOp) });
  }

  /** A full listing (start, compaction, resync): every peer from it, and the kernel reconciled against them. */
  private listed(entries: Map<string, Entry>): void {
    this.peers.clear();
    for (const [k, e] of entries) {
      const p = parseRecord(k, e.value);
      if (p && p.node !== this.c.nodeName) this.peers.set(k, p);
    }
    this.fullReconcile('listed the store');
  }

  private onEvents(evs: WatchEvent[]): void {
    for (const ev of evs) {
      const own = `${SUBNETS}${formatIP(this.subnet.ip)}-${this.subnet.prefix}` === ev.key;
      if (own) {
        if (ev.type === 'delete' && !this.stopping) {
          this.log.warn('our subnet key was deleted from the store; taking it back');
          this.events.emit({ kind: 'error', code: 'record_deleted' });
          void this.reacquire().catch((e) => { this.log.error('retaking the subnet failed', { error: (e as Error).message }); this.events.emit({ kind: 'error', code: 'reacquire_failed' }); });
        } else if (ev.type === 'put' && ev.value !== JSON.stringify(this.record(formatMAC(this.spec.mac))) && !this.reacquiring) {
          // Someone else wrote our record: every peer would follow it to a wrong MAC or address.
          this.log.warn('our record in the store was changed by someone else; publishing ours again', { found: ev.value });
          this.events.emit({ kind: 'error', code: 'record_changed' });
          void this.reacquire().catch((e) => { this.log.error('republishing failed', { error: (e as Error).message }); this.events.emit({ kind: 'error', code: 'reacquire_failed' }); });
        }
        continue;
      }
      const peer = ev.type === 'put' ? parseRecord(ev.key, ev.value) : null;
      if (peer?.node === this.c.nodeName) continue;
      if (peer) this.peers.set(ev.key, peer); else this.peers.delete(ev.key);
      const from = this.programmed.get(ev.key);
      const to = peer ? programmingFor(peer, this.local()) ?? undefined : undefined;
      const ops = transition(from, to);
      try {
        for (const o of ops) apply(this.nl, this.devices, o);
        if (to) this.programmed.set(ev.key, to); else this.programmed.delete(ev.key);
        if (ops.length) {
          this.log.info(to ? (from ? 'node changed' : 'node joined') : 'node left', { node: peer?.node ?? ev.key, ops: ops.map(describeOp) });
          this.events.emit({ kind: 'node', op: to ? (from ? 'replace' : 'add') : 'del' });
        }
      } catch (e) {
        this.log.error('programming a node failed; reconciling everything', { key: ev.key, error: (e as Error).message });
        this.events.emit({ kind: 'error', code: 'program_node_failed' });
        try { this.fullReconcile('after a failed update'); } catch (e2) { this.log.error('reconcile failed', { error: (e2 as Error).message }); this.events.emit({ kind: 'error', code: 'reconcile_failed' }); }
      }
    }
  }
}

/** `tetherd leave`: the node leaves the cluster: its subnet key is deleted (and its lease revoked), so every other node unprograms it. */
export async function leave(c: AgentConfig): Promise<string | undefined> {
  const kv = new EtcdKV({ ...c.etcd, prefix: `${c.etcd.prefix}/vxlan/${c.network}/` });
  const { entries } = await kv.rangeWithRevision(SUBNETS);
  for (const [k, e] of entries) {
    const p = parseRecord(k, e.value);
    if (p?.node !== c.nodeName) continue;
    await kv.txn({ if: [{ key: k, version: e.version }], del: [k] });
    if (e.lease) await kv.leaseRevoke(e.lease);
    return formatCIDR(p.subnet);
  }
  return undefined;
}
