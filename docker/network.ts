import type { Logger } from '../lib/log.js';
import { cidrContains, cidrsOverlap, formatIP, parseCIDR } from '../lib/ip/addr.js';
import { GATEWAY_V4 } from '../plugins/bgp-route/plan.js';
import { parseMAC } from '../lib/ip/mac.js';
import {
  Label, type AllocateNetworkRequest, type CapabilitiesResponse, type CreateEndpointRequest, type CreateEndpointResponse,
  type CreateNetworkRequest, type EndpointOperInfoResponse, type EndpointRequest, type JoinRequest, type JoinResponse,
  type ForeignNetwork, type NetworkRequest, type PortBinding, type ProgramExternalConnectivityRequest, type RefreshResponse,
} from './api.js';
import { parsePortMappings, type PortMapping } from '../lib/portmap/index.js';
import { vethNames, type Dataplane } from './dataplane.js';
import { badRequest, DriverError } from './errors.js';
import { foreignNetworks, isolationOf, localSpans, relatedTo } from './isolation.js';
import { networkFromRequest, sameNetwork } from './options.js';
import type { Overlay } from './overlay.js';
import { conflict, sameDefinition, type SharedDefinition, type SharedNetwork, type SharedNetworks } from './shared.js';
import type { DriverState, EndpointRecord, NetworkRecord } from './state.js';

type Empty = Record<string, never>;

/** What the hosts must agree on: the user's choices, not what each host derives (bridge, gateway, default MTU). */
const definitionOf = (n: NetworkRecord, host: string): SharedDefinition => ({
  mode: n.mode ?? 'bridge', subnet: n.ipv4[0].pool, internal: n.internal, masquerade: n.masquerade,
  ...(n.options.mtu ?? n.options[Label.mtu] ? { mtu: Number(n.options.mtu ?? n.options[Label.mtu]) } : {}), createdBy: host, createdAt: n.createdAt,
});

/** What networks across hosts need: tetherd's overlay on this host, and the store the hosts share. */
export interface MultiHost {
  overlay: () => Overlay;
  shared: SharedNetworks;
  /** tetherd in BGP mode: its IPAM network (the blocks it announces) and its node name. */
  routed?: { network: string; node: string };
}

/** A routed container's next hop (tether-bgp-route's): link-local, an address of the host end (docker/dataplane.ts). */
const ROUTED_GATEWAY = formatIP(GATEWAY_V4);
const short = (id: string) => id.slice(0, 12);

function ids(r: { NetworkID?: unknown; EndpointID?: unknown }, endpoint: boolean): void {
  if (typeof r.NetworkID !== 'string' || !r.NetworkID) throw badRequest(`tether: NetworkID must be a string, got ${JSON.stringify(r.NetworkID)}`);
  if (endpoint && (typeof r.EndpointID !== 'string' || !/^[0-9a-f]{12,64}$/.test(r.EndpointID))) throw badRequest(`tether: EndpointID must be Docker's hex endpoint ID, got ${JSON.stringify(r.EndpointID)}`);
}

/**
 * The MAC Docker's own bridge driver gives a container: 02:42 and the IPv4 address. A container that
 * comes back with its address (restart, rm + run --ip) comes back with its MAC, so its peers' ARP
 * entries stay right instead of pointing at a veth that is gone.
 */
export function macOfAddress(cidr: string): string {
  const ip = parseCIDR(cidr)!.ip;
  return ['02', '42', ...[...ip.bytes.subarray(-4)].map((b) => b.toString(16).padStart(2, '0'))].join(':');
}

const PROTOCOLS: Record<number, string> = { 6: 'tcp', 17: 'udp', 132: 'sctp' };

/** dockerd's -p bindings as tether port mappings; what tether cannot publish is refused in words. */
export function portMappingsOf(bindings: unknown[]): PortMapping[] {
  const raw = bindings.map((b, i) => {
    const p = b as Partial<PortBinding>;
    const proto = PROTOCOLS[p.Proto ?? -1];
    if (!proto) throw badRequest(`tether: -p binding ${i} has protocol number ${String(p.Proto)}; tether publishes tcp, udp and sctp`);
    if (!p.HostPort) throw badRequest(`tether: -p ${p.Port}/${proto} without a host port is not supported; give one: -p HOSTPORT:${p.Port}`);
    if (p.HostPortEnd && p.HostPortEnd !== p.HostPort) throw badRequest(`tether: -p ${p.HostPort}-${p.HostPortEnd}:${p.Port}: host port ranges are not supported; publish one port per -p`);
    return { hostPort: p.HostPort, containerPort: p.Port, protocol: proto, hostIP: p.HostIP ?? '' };
  });
  try { return parsePortMappings(raw, '-p'); } catch (e) { throw badRequest(`tether: ${(e as Error).message}`); }
}

/** -p requests in an endpoint's options (empty lists when none). */
export function portBindings(options: Record<string, unknown> | null | undefined): unknown[] {
  const v = options?.[Label.portMap];
  return Array.isArray(v) ? v : [];
}

/**
 * Docker's NetworkDriver on tether's bridge data path. CreateNetwork builds the bridge (as tether-bridge
 * does on a network's first ADD), CreateEndpoint the veth pair, Join names the end dockerd moves into the
 * sandbox; teardown is the reverse, and every step is idempotent: dockerd retries after errors and
 * restarts, and whatever is already gone counts as done.
 */
export class NetworkDriver {
  /** Veths of deleted endpoints whose removal runs after the answer (see removeAfterAnswer). */
  private readonly removing = new Set<Promise<void>>();

  constructor(
    private readonly state: DriverState, private readonly dp: Dataplane, private readonly multi?: MultiHost,
    private readonly log?: Pick<Logger, 'warn'>,
  ) {}

  /**
   * Deleting a veth waits ~20 ms in the kernel (an RCU grace period), and Docker needs nothing from it:
   * it runs right after the answer, so `docker rm` does not wait for it. What looks at the driver's
   * veths afterwards (DeleteNetwork, reconcile) waits for these first. A driver killed in between
   * leaves a veth that no record names, which reconcile (`cnictl gc --docker`) removes.
   */
  private removeAfterAnswer(e: EndpointRecord): void {
    const done = new Promise<void>((resolve) => setImmediate(() => {
      try { this.dp.removeEndpoint(e); } catch (err) {
        this.log?.warn('veth of a deleted endpoint not removed (cnictl gc --docker removes it)', { hostVeth: e.hostVeth, error: (err as Error).message });
      }
      resolve();
    }));
    this.removing.add(done);
    void done.then(() => this.removing.delete(done));
  }

  private async removed(): Promise<void> {
    await Promise.all([...this.removing]);
  }

  capabilities(): CapabilitiesResponse {
    return { Scope: 'local', ConnectivityScope: 'local' };
  }

  private async network(id: string): Promise<NetworkRecord> {
    const n = await this.state.network(id);
    if (!n) throw new DriverError(`tether: network ${short(id)} is unknown to this driver (created while tetherd used another --state-dir?); remove it with docker network rm and create it again`);
    return n;
  }

  private async endpoint(r: EndpointRequest): Promise<EndpointRecord> {
    const e = await this.state.endpoint(r.NetworkID, r.EndpointID);
    if (!e) throw new DriverError(`tether: endpoint ${short(r.EndpointID)} of network ${short(r.NetworkID)} is unknown to this driver`);
    return e;
  }

  /** Re-creates the data path of every known network: after a reboot or a flushed namespace, nothing is missing. */
  async restore(): Promise<void> {
    const all = await this.state.networks();
    for (const n of all) {
      this.dp.ensureNetwork(n, isolationOf(n, all));
      for (const e of await this.state.endpoints(n.id)) this.dp.restoreEndpoint(n, e);
    }
  }

  /**
   * The networks defined across hosts, read from the store the hosts share: what this host's isolation
   * must know of the -o mode=bgp networks it has none of. Undefined where -o mode=bgp is not configured.
   * A read of the store only: the periodic refresh runs it outside the request queue (docker/refresh.ts).
   */
  async hostsView(): Promise<Map<string, SharedNetwork> | undefined> {
    return this.multi?.routed ? this.multi.shared.networks() : undefined;
  }

  /** Foreign spans in line with `view` and this host's networks (a few ms of netlink; run in turn with requests). */
  async applyHosts(view: Map<string, SharedNetwork>): Promise<ForeignNetwork[]> {
    const all = await this.state.networks();
    const foreign = foreignNetworks(all, view);
    this.dp.foreignSpans(foreign, localSpans(all));
    return foreign.map((f) => ({ Name: f.name, Subnet: f.subnet, Allowed: f.allowed.map((m) => ('bridge' in m ? `bridge ${m.bridge}` : m.routed)) }));
  }

  /** Reads the hosts' networks and applies them (Tether.Refresh, and the steps below). */
  async refreshHosts(): Promise<RefreshResponse> {
    const view = await this.hostsView();
    return { Foreign: view ? await this.applyHosts(view) : [] };
  }

  /**
   * When a -o mode=bgp network is made or removed here, or one that allows networks by name is made
   * (and at the driver's start, by the periodic refresh's first run: docker/refresh.ts), the other
   * hosts' networks are learnt again: a host that makes its network after another host made its own
   * sees that definition, and refuses its containers' traffic to it at once (the earlier host learns of
   * the later network at its next periodic refresh: a masquerading sender's traffic can only be told
   * apart by the sender's host, by destination). A failure is
   * logged, not thrown: the network is made (or gone) all the same, and the periodic refresh tries again.
   * Endpoints never read the store: a foreign span is the same for every container.
   */
  private async learnHosts(): Promise<void> {
    try { await this.refreshHosts(); } catch (e) {
      this.log?.warn('the other hosts\' -o mode=bgp networks were not learnt for isolation (retried periodically)', { error: (e as Error).message });
    }
  }

  async createNetwork(r: CreateNetworkRequest): Promise<Empty> {
    ids(r, false);
    const all = await this.state.networks();
    let n = networkFromRequest(r, all);
    if (n.mode === 'vxlan') n = await this.onOverlay(n);
    else if (n.mode === 'bgp') n = await this.onRoutes(n);
    else this.notOverlay(n);
    const had = all.find((x) => x.id === n.id);
    if (had && !sameNetwork(had, n)) throw new DriverError(`tether: network ${short(n.id)} exists with other settings`);
    if (n.overlay) await this.multi!.shared.join(n.overlay.name, n.overlay.host, n.id, definitionOf(n, n.overlay.host), n.allowNetworks);
    try {
      const now = [...all.filter((x) => x.id !== n.id), had ?? n];
      this.dp.ensureNetwork(had ?? n, isolationOf(had ?? n, now));
      // Networks this one allows, or that allow it, carry the pair's elements on their side too.
      for (const o of relatedTo(had ?? n, now)) this.dp.isolate(isolationOf(o, now));
      if (!had) await this.state.putNetwork(n);
      // From now on tether's IPAM gives this pool's addresses from tetherd's store, as /32s.
      if (n.mode === 'bgp') await this.markRouted(n);
    } catch (e) {
      // Nothing half made: the bridge, masquerade table and firewall go back to what the known networks need.
      if (!had) {
        try { this.dp.removeNetwork(n); } catch { /* reported below */ }
        if (n.overlay) await this.multi!.shared.leave(n.overlay.name, n.overlay.host).catch(() => undefined);
      }
      throw new DriverError(`tether: cannot create network ${short(n.id)}: ${(e as Error).message}`);
    }
    if (n.mode === 'bgp' || n.allowNetworks?.length) await this.learnHosts();
    return {};
  }

  /**
   * A -o mode=vxlan network on this host: tetherd's overlay pool, this host's subnet of it, the overlay's
   * MTU; checked against the definition the hosts share first, so a conflict is reported as one.
   */
  private async onOverlay(n: NetworkRecord): Promise<NetworkRecord> {
    if (!this.multi) throw new DriverError('tether: -o mode=vxlan needs the store the hosts share: start tetherd docker-plugin with --config naming tetherd\'s "etcd"');
    const ov = this.multi.overlay();
    const want = await this.agreesWithHosts(n, ov.network, ov.node);
    if (n.ipv6.length) throw badRequest('tether: -o mode=vxlan networks are IPv4 only (tetherd\'s VXLAN pool is IPv4); drop --ipv6');
    if (want.subnet !== ov.pool) throw badRequest(`tether: -o mode=vxlan: --subnet ${want.subnet} is not the pool of tetherd's overlay "${ov.network}" (${ov.pool}); give --subnet ${ov.pool}`);
    const subnet = parseCIDR(ov.subnet)!;
    const gw = parseCIDR(n.ipv4[0].gateway)!;
    if (!cidrContains(subnet, gw.ip) || gw.prefix !== subnet.prefix) {
      throw badRequest(`tether: -o mode=vxlan needs --ipam-driver tether and no --gateway: each host's gateway is the first address of its own subnet (${ov.subnet} on this host), not ${n.ipv4[0].gateway}`);
    }
    if (n.mtu && n.mtu > ov.mtu) throw badRequest(`tether: -o mtu=${n.mtu} is larger than tetherd's VXLAN MTU ${ov.mtu}; give -o mtu=${ov.mtu} or less`);
    return { ...n, mtu: n.mtu ?? ov.mtu, overlay: { name: ov.network, host: ov.node } };
  }

  /** Refuses a definition other than the one the hosts recorded (before any other check: a conflict is reported as one). */
  private async agreesWithHosts(n: NetworkRecord, name: string, host: string): Promise<SharedDefinition> {
    const want = definitionOf(n, host);
    const { definition } = await this.multi!.shared.get(name);
    if (definition && !sameDefinition(definition, want)) throw conflict(name, definition, want);
    return want;
  }

  /** The network's pool, as tether's IPAM made it (dockerd asked for it before telling the mode). */
  private async poolOf(n: NetworkRecord) {
    return (await this.state.pools()).find((p) => !p.v6 && p.pool === n.ipv4[0].pool);
  }

  /** A -o mode=bgp network: routed /32s from tetherd's IPAM store, checked against the shared definition first. */
  private async onRoutes(n: NetworkRecord): Promise<NetworkRecord> {
    const routed = this.multi?.routed;
    if (!this.multi || !routed) throw new DriverError('tether: -o mode=bgp needs tetherd in BGP mode and the store the hosts share: start tetherd docker-plugin with --config naming tetherd\'s "etcd" and "bgp": {"ipamNetwork": tetherd\'s "ipam.network"}');
    // Several -o mode=bgp networks: each is shared under its -o name= (one without is tetherd's IPAM network's).
    const name = n.name ?? routed.network;
    await this.agreesWithHosts(n, name, routed.node);
    if (n.ipv6.length) throw badRequest('tether: -o mode=bgp networks are IPv4 only in this driver; drop --ipv6');
    const pool = await this.poolOf(n);
    if (!pool) throw badRequest('tether: -o mode=bgp needs --ipam-driver tether: the addresses must come from the blocks tetherd announces');
    if (pool.hostSubnet) throw badRequest(`tether: --subnet ${pool.pool} is tetherd's VXLAN overlay; use -o mode=vxlan for it`);
    // Their addresses share tetherd's IPAM store: two networks' subnets must not overlap on any host.
    for (const [other, d] of await this.multi.shared.definitions()) {
      if (other !== name && d.mode === 'bgp' && cidrsOverlap(parseCIDR(d.subnet)!, parseCIDR(n.ipv4[0].pool)!)) {
        throw badRequest(`tether: -o mode=bgp --subnet ${n.ipv4[0].pool} overlaps ${d.subnet} of network "${other}" (created on ${d.createdBy}); pick another --subnet, or give -o name=${other} to join that network`);
      }
    }
    return { ...n, overlay: { name, host: routed.node } };
  }

  private async markRouted(n: NetworkRecord): Promise<void> {
    const pool = await this.poolOf(n);
    if (pool && !pool.routed) await this.state.putPool({ ...pool, routed: { network: this.multi!.routed!.network, node: this.multi!.routed!.node } });
  }

  /** A bridge network on the overlay's pool would get this host's subnet of it and reach nothing beyond: refused. */
  private notOverlay(n: NetworkRecord): void {
    let ov: Overlay | undefined;
    try { ov = this.multi?.overlay(); } catch { return; }
    if (ov && n.ipv4.some((p) => p.pool === ov.pool)) throw badRequest(`tether: --subnet ${ov.pool} is tetherd's VXLAN overlay "${ov.network}": create it with -o mode=vxlan (on every host), or pick another --subnet`);
  }

  async deleteNetwork(r: NetworkRequest): Promise<Empty> {
    ids(r, false);
    const n = await this.state.network(r.NetworkID);
    if (!n) return {};
    await this.removed();
    const left = await this.state.endpoints(n.id);
    // dockerd deletes a network only once its endpoints are gone; any left are stale records (their veths go too).
    for (const e of left) { this.dp.removeEndpoint(e); await this.state.deleteEndpoint(e.networkID, e.endpointID); }
    this.dp.removeNetwork(n);
    await this.state.deleteNetwork(n.id);
    if (n.overlay && this.multi) await this.multi.shared.leave(n.overlay.name, n.overlay.host);
    // Still defined by other hosts, its subnet stays isolated here, as a foreign span now; else its pairs go.
    if (n.mode === 'bgp') await this.learnHosts();
    return {};
  }

  allocateNetwork(r: AllocateNetworkRequest): never {
    throw new DriverError(`tether: AllocateNetwork is for swarm-scoped networks; tether's driver is local scope (network ${short(String(r.NetworkID))})`);
  }

  freeNetwork(): Empty { return {}; }

  async createEndpoint(r: CreateEndpointRequest): Promise<CreateEndpointResponse> {
    ids(r, true);
    const n = await this.network(r.NetworkID);
    const iface = r.Interface ?? { Address: '', AddressIPv6: '', MacAddress: '' };
    const addresses = [iface.Address, iface.AddressIPv6].filter((a) => a);
    for (const a of addresses) if (!parseCIDR(a)) throw badRequest(`tether: endpoint address ${JSON.stringify(a)} is not a CIDR`);
    if (!iface.Address) throw badRequest(`tether: endpoint ${short(r.EndpointID)} has no IPv4 address; the network's IPAM driver gave none`);
    if (iface.MacAddress && !parseMAC(iface.MacAddress)) throw badRequest(`tether: --mac-address ${iface.MacAddress} is not a MAC address`);
    const existing = await this.state.endpoint(n.id, r.EndpointID);
    if (existing && this.dp.endpointPresent(existing)) return {};
    const e: EndpointRecord = {
      networkID: n.id, endpointID: r.EndpointID, ...vethNames(r.EndpointID), addresses,
      mac: iface.MacAddress || macOfAddress(iface.Address), ports: portBindings(r.Options), createdAt: new Date().toISOString(),
    };
    const { mac } = this.dp.createEndpoint(n, e);
    try {
      await this.state.putEndpoint({ ...e, mac });
    } catch (err) {
      this.dp.removeEndpoint(e);
      throw err;
    }
    // The request's Interface was filled by dockerd, so the answer must not carry one (dockerd would roll back).
    return {};
  }

  async endpointOperInfo(r: EndpointRequest): Promise<EndpointOperInfoResponse> {
    ids(r, true);
    const e = await this.endpoint(r);
    const n = await this.state.network(r.NetworkID);
    return { Value: { hostInterface: e.hostVeth, bridge: n?.bridge ?? '', addresses: e.addresses, ...(e.mac ? { mac: e.mac } : {}) } };
  }

  async deleteEndpoint(r: EndpointRequest): Promise<Empty> {
    ids(r, true);
    const e = await this.state.endpoint(r.NetworkID, r.EndpointID);
    const names = e ?? { ...vethNames(r.EndpointID) } as EndpointRecord;
    // By name, whether or not a record survived: no veth or published port outlives its endpoint.
    await this.unpublish(r, e);
    if (e) await this.state.deleteEndpoint(e.networkID, e.endpointID);
    this.removeAfterAnswer(names);
    return {};
  }

  async join(r: JoinRequest): Promise<JoinResponse> {
    ids(r, true);
    const n = await this.network(r.NetworkID);
    let e = await this.endpoint(r);
    // The pair may be gone (the host rebooted under a stopped container): make it again, same names.
    // Nothing is written here: a Join changes nothing the driver must remember (a store write is an fsync).
    if (!this.dp.endpointPresent(e)) e = { ...e, ...this.dp.createEndpoint(n, e) };
    const gw4 = n.ipv4[0] && parseCIDR(n.ipv4[0].gateway)!.ip;
    const gw6 = n.ipv6[0] && parseCIDR(n.ipv6[0].gateway)!.ip;
    const res: JoinResponse = {
      InterfaceName: { SrcName: e.sandboxVeth, DstPrefix: 'eth' },
      StaticRoutes: [],
      // --internal: no default route, and no docker_gwbridge to give it one either.
      DisableGatewayService: n.internal,
    };
    if (n.mode === 'bgp') {
      // The /32 has no subnet: the on-link route to the gateway first, then the default route via it;
      // --internal: no default route, only the network's subnet (its containers on every host) via it.
      const onLink = { Destination: `${ROUTED_GATEWAY}/32`, RouteType: 1 as const };
      if (n.internal) return { ...res, StaticRoutes: [onLink, { Destination: n.ipv4[0].pool, RouteType: 0, NextHop: ROUTED_GATEWAY }] };
      return { ...res, Gateway: ROUTED_GATEWAY, StaticRoutes: [onLink] };
    }
    if (!n.internal && gw4) res.Gateway = formatIP(gw4);
    // The overlay's pool is wider than this host's subnet on eth0: the other hosts' containers are via the gateway
    // (as tether-vxlan's route to the pool), also for a container whose default route is another network's.
    if (n.mode === 'vxlan' && gw4) res.StaticRoutes.push({ Destination: n.ipv4[0].pool, RouteType: 0, NextHop: formatIP(gw4) });
    if (!n.internal && gw6 && e.addresses.some((a) => parseCIDR(a)!.ip.family === 6)) res.GatewayIPv6 = formatIP(gw6);
    return res;
  }

  /**
   * The veth goes at Leave, before the answer, while its container end is still in the container: after
   * Leave, Docker would take that end out (down, rename, move back to the host: a namespace change,
   * ~15 ms in the kernel) only for DeleteEndpoint to delete it. Docker tolerates the end being gone
   * (libnetwork logs it at debug level), and a Join after a Leave makes the pair again.
   */
  async leave(r: EndpointRequest): Promise<Empty> {
    ids(r, true);
    const e = await this.state.endpoint(r.NetworkID, r.EndpointID);
    if (e) this.dp.removeEndpoint(e);
    return {};
  }

  async programExternalConnectivity(r: ProgramExternalConnectivityRequest): Promise<Empty> {
    ids(r, true);
    const mappings = portMappingsOf(portBindings(r.Options));
    if (!mappings.length) return {};
    const n = await this.network(r.NetworkID);
    const e = await this.endpoint(r);
    this.dp.publish(n, e, mappings);
    await this.state.putEndpoint({ ...e, ports: portBindings(r.Options) });
    return {};
  }

  async revokeExternalConnectivity(r: EndpointRequest): Promise<Empty> {
    ids(r, true);
    await this.unpublish(r);
    return {};
  }

  /** Published ports go; an endpoint known to have none costs no netfilter dump (a lost record: looked up anyway). */
  private async unpublish(r: EndpointRequest, e?: EndpointRecord): Promise<void> {
    const rec = e ?? await this.state.endpoint(r.NetworkID, r.EndpointID);
    if (!rec || rec.ports?.length) this.dp.unpublish(r.NetworkID, r.EndpointID);
  }

  discover(): Empty { return {}; }

  /**
   * Endpoints Docker no longer has (removed while the driver was down, or a driver killed mid-call): their
   * published ports, veth and record go; so does any veth of ours that no record names.
   */
  async reconcile(live: { NetworkID: string; EndpointID: string }[]): Promise<{ endpoints: string[]; veths: string[] }> {
    await this.removed();
    const keep = new Set(live.map((l) => `${l.NetworkID}/${l.EndpointID}`));
    const endpoints: string[] = [];
    for (const e of await this.state.endpoints()) {
      if (keep.has(`${e.networkID}/${e.endpointID}`)) continue;
      this.dp.unpublish(e.networkID, e.endpointID);
      this.dp.removeEndpoint(e);
      await this.state.deleteEndpoint(e.networkID, e.endpointID);
      endpoints.push(e.endpointID);
    }
    const named = new Set((await this.state.endpoints()).map((e) => e.hostVeth));
    const veths = this.dp.hostVeths().filter((v) => !named.has(v));
    for (const v of veths) this.dp.removeEndpoint({ hostVeth: v } as EndpointRecord);
    return { endpoints, veths };
  }
}
