import { formatCIDR, formatIP, parseIP, type CIDR } from '../../lib/ip/addr.js';
import { formatMAC } from '../../lib/ip/mac.js';
import type { Logger } from '../../lib/log.js';
import { Netlink } from '../../lib/netlink/handle.js';
import type { VxlanDeviceConfig } from '../config.js';
import { keepDevice, reconcile, routesAdrift, type Devices } from '../dataplane.js';
import { stableMAC, type DeviceSpec } from '../device.js';
import type { AgentEvents } from '../events.js';
import { programmingFor, samePlan, type LocalView, type Programming } from '../plan.js';
import { detectUnderlay, overhead, type Underlay } from '../underlay.js';

/** What the VXLAN part needs of the peer agent: the table's blocks and the members' VTEPs, as agreed. */
export interface VtepSource {
  /** Every block with a live owner (this node's own only while it may allocate there). */
  ownedBlocks(): { cidr: CIDR; node: string }[];
  /** Live members with their VTEP: underlay address and VXLAN device MAC ('' when not in VXLAN mode). */
  vteps(): { name: string; address: string; vtepMAC: string }[];
}

export interface PeerVxlanView { device: string; mac: string; mtu: number; vni: number; port: number; routes: number }

/** This node's VTEP MAC: derived from the name and VNI, so it is the same on every start and known before the device exists. */
export const vtepMACOf = (node: string, vni: number) => formatMAC(stableMAC(node, vni));

/**
 * VXLAN mode on peers: the same device and dataplane as VXLAN mode on etcd (device.ts, dataplane.ts,
 * plan.ts), programmed from the peer table instead of etcd leases. Each block of the pool owned by
 * another live member is a "subnet" routed to that member's VTEP (gateway: the block's network address,
 * onlink; neighbour and FDB entries as Flannel's). Any change of the table or the members reconciles the
 * kernel to exactly that set: a block that moved is routed to its new owner, a departed member's entries go.
 */
export class PeerVxlan {
  private nl!: Netlink;
  private underlay!: Underlay;
  private spec!: DeviceSpec;
  private devices!: Devices;
  private programmed = new Map<string, Programming>();
  private timer?: NodeJS.Timeout;
  private adriftFailure = '';
  private stopping = false;

  constructor(private readonly c: VxlanDeviceConfig & { checkIntervalMs: number; nodeName: string; pool: CIDR },
    private readonly src: VtepSource, private readonly log: Logger, private readonly events: AgentEvents) {}

  /** After the peer agent started (its underlay address is the VTEP's). */
  start(underlayIP: string): void {
    this.nl = Netlink.open();
    this.underlay = detectUnderlay(this.nl, { ip: parseIP(underlayIP)! });
    const mtu = this.c.mtu ?? this.underlay.link.mtu - overhead(this.underlay.address.ip.family);
    const mac = vtepMACOf(this.c.nodeName, this.c.vni);
    this.spec = {
      name: this.c.device, vni: this.c.vni, port: this.c.port, local: this.underlay.address.ip, underlayIndex: this.underlay.link.index,
      mtu, mac: Buffer.from(mac.split(':').map((x) => parseInt(x, 16))), pool: this.c.pool, txChecksumOffload: this.c.txChecksumOffload,
    };
    this.ensure(true);
    this.program('started', true);
    this.timer = setInterval(() => this.check(), this.c.checkIntervalMs);
  }

  stop(): void {
    this.stopping = true;
    if (this.timer) clearInterval(this.timer);
    this.nl?.close();
  }

  view(): PeerVxlanView {
    return { device: this.spec.name, mac: formatMAC(this.spec.mac), mtu: this.spec.mtu, vni: this.spec.vni, port: this.spec.port, routes: this.programmed.size };
  }

  private local(): LocalView { return { underlay: this.underlay.address, directRouting: this.c.directRouting }; }

  private want(): Map<string, Programming> {
    const vteps = new Map(this.src.vteps().map((m) => [m.name, m]));
    const out = new Map<string, Programming>();
    for (const b of this.src.ownedBlocks()) {
      const m = vteps.get(b.node);
      if (b.node === this.c.nodeName || !m?.vtepMAC) continue;
      const p = programmingFor({ node: m.name, underlayIP: m.address, vtepMAC: m.vtepMAC, vni: this.c.vni, backend: 'vxlan', subnet: b.cidr }, this.local());
      if (p) out.set(formatCIDR(b.cidr), p);
    }
    return out;
  }

  /** After a change of the table or the members (and at start): the kernel made to hold exactly what they say. */
  program(why: string, force = false): void {
    // Changes before start() (the agent's first steps) are programmed by start() itself.
    if (this.stopping || !this.spec) return;
    const want = this.want();
    if (!force && want.size === this.programmed.size && [...want].every(([k, p]) => samePlan(p, this.programmed.get(k)))) return;
    try {
      const ops = reconcile(this.nl, this.devices, [...want.values()]);
      const owners = new Set([...want.values()].map((p) => (p.kind === 'vxlan' ? p.mac : formatIP(p.via))));
      this.log.info('vxlan routes', { why, blocks: want.size, vteps: owners.size, removedStale: ops.filter((o) => o.op.endsWith('-del')).length });
      this.programmed = want;
      this.events.emit({ kind: 'resync', reason: why });
    } catch (e) {
      this.log.error('programming the VXLAN routes failed', { why, error: (e as Error).message });
      this.events.emit({ kind: 'error', code: 'program_node_failed' });
    }
  }

  private ensure(initial: boolean): boolean {
    const { devices, created } = keepDevice(this.nl, this.spec, this.underlay.link.index, this.log, initial);
    this.devices = devices;
    return created;
  }

  /** The device as configured, and every programmed route still in the kernel (a link set down takes them). */
  private check(): void {
    if (this.stopping) return;
    try {
      if (this.ensure(false)) { this.program('device recreated', true); return; }
      const adrift = routesAdrift(this.nl, this.devices, this.programmed.values());
      if (!adrift.length) { this.adriftFailure = ''; return; }
      this.program('routes missing', true);
      this.adriftFailure = '';
    } catch (e) {
      const why = (e as Error).message;
      if (why !== this.adriftFailure) { this.log.warn('the VXLAN device or its routes cannot be put back yet', { error: why }); this.events.emit({ kind: 'error', code: 'device_restore_failed' }); }
      this.adriftFailure = why;
    }
  }
}
