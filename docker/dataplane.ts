import { parseCIDR, type CIDR, type Family } from '../lib/ip/addr.js';
import { parseMAC } from '../lib/ip/mac.js';
import { Netlink } from '../lib/netlink/handle.js';
import { createLogger } from '../lib/log.js';
import { enableForwarding } from '../plugins/common/forwarding.js';
import { hostVethName } from '../plugins/common/names.js';
import { Rollback } from '../plugins/common/rollback.js';
import { createVeth, removeVeth } from '../plugins/common/veth.js';
import { ensureBridge, ensureGatewayAddresses } from '../plugins/bridge/host.js';
import { configureHostEnd, routeToContainer } from '../plugins/bgp-route/host.js';
import { GATEWAY_V4, HOST_MAC } from '../plugins/bgp-route/plan.js';
import { ensureMasquerade, removeMasquerade } from '../plugins/bridge/masq.js';
import { ensureIsolation, removeIsolation, syncForeignSpans, tagIsolationDevice, type ForeignSpan, type IsolationSettings } from '../plugins/common/isolation.js';
import { memberOf } from './isolation.js';
import { addPortMappings, removePortMappings, type PortMapping, type PortOwner } from '../lib/portmap/index.js';
import type { EndpointRecord, NetworkRecord } from './state.js';

/**
 * The kernel side of the driver, in the namespace it runs in (dockerd's): what tether-bridge does for a
 * CNI ADD, split the way CNM splits it. The driver makes the veth pair beside the bridge and dockerd
 * moves one end into the sandbox and addresses it, so the driver never enters a container's namespace.
 */
export interface Dataplane {
  /** Bridge, gateway addresses, forwarding, masquerade and isolation (docker/isolation.ts); safe to repeat (tetherd's start). */
  ensureNetwork(n: NetworkRecord, isolation: IsolationSettings): void;
  /** The network's isolation elements alone: another network that allows it (or that it allows) came or went. */
  isolate(isolation: IsolationSettings): void;
  /** Undoes ensureNetwork. */
  removeNetwork(n: NetworkRecord): void;
  /** The other hosts' -o mode=bgp networks this host has none of, as foreign spans; `local`: this host's own spans, never touched. */
  foreignSpans(foreign: ForeignSpan[], local: string[]): void;
  /** The veth pair, host end on the bridge; returns the sandbox end's MAC. */
  createEndpoint(n: NetworkRecord, e: EndpointRecord): { mac: string };
  /** At the driver's start, for an endpoint it knows: a routed one's host veth back in its network's isolation group. */
  restoreEndpoint(n: NetworkRecord, e: EndpointRecord): void;
  /** The pair is there (the sandbox end may be inside a container). */
  endpointPresent(e: EndpointRecord): boolean;
  removeEndpoint(e: EndpointRecord): void;
  /** -p: tether's port mapping to the endpoint's addresses; all or nothing. */
  publish(n: NetworkRecord, e: EndpointRecord, mappings: PortMapping[]): void;
  /** Host ends of the driver's veths present in the namespace (by their prefix). */
  hostVeths(): string[];
  /** Everything the endpoint published; none is fine. */
  unpublish(networkID: string, endpointID: string): void;
}

/** Who a published port belongs to, in tether's port table (shown by cnictl and in "taken" errors). */
export const portOwner = (networkID: string, endpointID: string): PortOwner => ({ network: `docker-${networkID.slice(0, 12)}`, containerID: endpointID, ifname: 'eth' });

/** Names derived from the endpoint ID, so a restarted driver (or `cnictl gc`) finds them from the record alone. */
const HOST_VETH_PREFIX = 'tdh';
export function vethNames(endpointID: string): { hostVeth: string; sandboxVeth: string } {
  return { hostVeth: hostVethName(endpointID, 'docker', HOST_VETH_PREFIX), sandboxVeth: hostVethName(endpointID, 'docker', 'tdc') };
}

const masqName = (n: NetworkRecord) => `docker-${n.id.slice(0, 12)}`;
const cidrs = (xs: { gateway: string }[]): CIDR[] => xs.map((x) => parseCIDR(x.gateway)!);

const log = createLogger({ component: 'tetherd docker-plugin' });

/** -o mode=bgp: no bridge; each container is a /32 routed through its veth, as tether-bgp-route attaches pods. */
const routed = (n: NetworkRecord) => n.mode === 'bgp';

export const kernelDataplane: Dataplane = {
  ensureNetwork(n, isolation) {
    if (routed(n)) {
      enableForwarding(new Set<Family>([4]));
      if (n.masquerade) ensureMasquerade(masqName(n), n.ipv4.map((p) => parseCIDR(p.pool)!));
      // The network's elements; its group goes on each container's host veth (createEndpoint).
      ensureIsolation(isolation);
      return;
    }
    const gateways = [...cidrs(n.ipv4), ...cidrs(n.ipv6)];
    Netlink.within('/proc/self/ns/net', (nl) => {
      const br = ensureBridge(nl, n.bridge, { mtu: n.mtu, promisc: false });
      if (n.mtu && br.mtu !== n.mtu) nl.linkSet(br.index, { mtu: n.mtu });
      ensureGatewayAddresses(nl, br, gateways, false);
    });
    enableForwarding(new Set<Family>(gateways.map((g) => g.ip.family)));
    // By pool, not by the gateway's prefix: a VXLAN network's pool spans the hosts, and traffic between
    // them keeps its addresses.
    if (n.masquerade) ensureMasquerade(masqName(n), [...n.ipv4, ...n.ipv6].map((p) => parseCIDR(p.pool)!));
    // tether-bridge's isolation: networks do not reach each other, an --internal one nothing beyond its bridge
    // (a -o mode=vxlan one: nothing beyond its overlay).
    ensureIsolation(isolation);
  },

  isolate(isolation) { ensureIsolation(isolation); },

  foreignSpans(foreign, local) { syncForeignSpans(foreign, local); },

  removeNetwork(n) {
    removeMasquerade(masqName(n));
    removeIsolation(memberOf(n), n.mode ? n.ipv4.map((p) => p.pool) : []);
    if (routed(n)) return;
    Netlink.within('/proc/self/ns/net', (nl) => {
      const br = nl.linkByName(n.bridge);
      // Only a bridge: a name the user gave (-o bridge=) might now be someone else's device.
      if (br?.kind === 'bridge') nl.linkDel(br.index);
    });
  },

  createEndpoint(n, e) {
    const rollback = new Rollback();
    try {
      if (routed(n)) {
        return Netlink.within('/proc/self/ns/net', (nl) => {
          const host = createVeth(nl, `endpoint ${e.endpointID.slice(0, 12)}`, {
            hostName: e.hostVeth, ifname: e.sandboxVeth, mtu: n.mtu, hostIPv6: false, hostMac: HOST_MAC, ...(e.mac ? { mac: parseMAC(e.mac)! } : {}),
          }, rollback);
          configureHostEnd(e.hostVeth, new Set<Family>([4]));
          // The network's isolation group, as tether-bgp-route tags a pod's host veth (it goes with the veth).
          tagIsolationDevice(memberOf(n), e.hostVeth);
          // tether-bgp-route gives the container a static entry for its gateway; dockerd configures the sandbox
          // and cannot, so the container ARPs for it. Proxy ARP answers only where the host has a route to
          // 169.254.1.1 (a default route); the address itself on the host end is answered everywhere.
          nl.addrAdd(host.index, { ip: GATEWAY_V4, prefix: 32 });
          const peer = nl.linkByName(e.sandboxVeth);
          if (!peer) throw new Error(`the sandbox end ${e.sandboxVeth} vanished right after creation`);
          // The /32 and a static neighbour entry; both go with the veth. tetherd announces the block.
          routeToContainer(nl, host, e.addresses.map((a) => parseCIDR(a)!), parseMAC(peer.mac)!);
          rollback.commit();
          return { mac: peer.mac };
        });
      }
      return Netlink.within('/proc/self/ns/net', (nl) => {
        const br = nl.linkByName(n.bridge);
        if (br?.kind !== 'bridge') throw new Error(`the network's bridge ${n.bridge} is missing; restart tetherd docker-plugin to rebuild it`);
        createVeth(nl, `endpoint ${e.endpointID.slice(0, 12)}`, {
          hostName: e.hostVeth, ifname: e.sandboxVeth, mtu: n.mtu, master: br.index, hostIPv6: false, ...(e.mac ? { mac: parseMAC(e.mac)! } : {}),
        }, rollback);
        const peer = nl.linkByName(e.sandboxVeth);
        if (!peer) throw new Error(`the sandbox end ${e.sandboxVeth} vanished right after creation`);
        rollback.commit();
        return { mac: peer.mac };
      });
    } catch (err) {
      // Synchronous steps only (link deletion): the rollback's promise settles at once.
      void rollback.run(log);
      throw err;
    }
  },

  restoreEndpoint(n, e) {
    // A bridge port's traffic carries the bridge's group; a routed veth carries its own, which must be the network's.
    if (routed(n) && this.endpointPresent(e)) tagIsolationDevice(memberOf(n), e.hostVeth);
  },

  endpointPresent(e) {
    return Netlink.within('/proc/self/ns/net', (nl) => nl.linkByName(e.hostVeth)?.kind === 'veth');
  },

  removeEndpoint(e) { removeVeth(e.hostVeth); },

  hostVeths() {
    return Netlink.within('/proc/self/ns/net', (nl) => nl.links({ kind: 'veth' }).map((l) => l.name).filter((n) => n.startsWith(HOST_VETH_PREFIX)));
  },

  publish(n, e, mappings) {
    addPortMappings({ owner: portOwner(n.id, e.endpointID), addresses: e.addresses.map((a) => parseCIDR(a)!), hostInterfaces: [n.bridge, e.hostVeth] }, mappings);
  },

  unpublish(networkID, endpointID) { removePortMappings(portOwner(networkID, endpointID)); },
};
