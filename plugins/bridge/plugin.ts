import { CniError, ErrorCode } from '../../lib/cni/errors.js';
import type { Context, PluginSpec } from '../../lib/cni/skel.js';
import type { Interface, Result, RouteConfig } from '../../lib/cni/types.js';
import { addToIP, formatIP, ipEqual, networkOf, parseCIDR, parseIP, type CIDR, type Family, type IP } from '../../lib/ip/addr.js';
import * as C from '../../lib/netlink/constants.js';
import { Netlink } from '../../lib/netlink/handle.js';
import { attach } from '../common/attach.js';
import { checkVethAttachment } from '../common/check.js';
import { configureContainer, containerRoutes, sleepMs } from '../common/container.js';
import { enableForwarding } from '../common/forwarding.js';
import { allocate, hasIpam, ipamForwarders } from '../common/ipam.js';
import { requestedMac } from '../common/mac.js';
import { hostVethName } from '../common/names.js';
import { checkShaping, requestedBandwidth, shapeTraffic, shapingLinks } from '../common/bandwidth.js';
import { checkPorts, gcPorts, publishPorts, unpublishPorts } from '../common/ports.js';
import { createVeth, deleteVethAttachment } from '../common/veth.js';
import { parseBridgeConf, type BridgeConf } from './config.js';
import { ensureBridge, ensureGatewayAddresses } from './host.js';
import { ensureIsolation, isolationProblems, type IsolationSettings } from '../common/isolation.js';
import { ensureMasquerade } from './masq.js';
import { mark } from '../../lib/trace.js';

/**
 * A new port starts disabled and the kernel turns it forwarding once it sees carrier, from its link
 * watch work (which batches events up to a second, and runs later on a loaded machine): return only
 * once traffic can flow. While the port has carrier the kernel will get there, so only a bound far
 * beyond any load ends the wait; without carrier it never will, and that is said at once.
 */
const PORT_FORWARDING_BOUND_MS = 30_000;

function waitForwarding(nl: Netlink, index: number): void {
  const started = Date.now();
  let link = nl.linkByIndex(index);
  for (let pause = 0; link?.bridgePort?.state !== C.BR_STATE_FORWARDING; pause = Math.min(50, pause * 2 || 1)) {
    const state = link?.bridgePort?.state;
    if (link && (link.flags & C.IFF_UP) && !(link.flags & C.IFF_LOWER_UP) && Date.now() - started > 1000) {
      throw new CniError(ErrorCode.TryAgainLater, `bridge port ${link.name} has no carrier (is the container end down?), so it never starts forwarding (state ${state ?? 'unknown'})`);
    }
    if (Date.now() - started > PORT_FORWARDING_BOUND_MS) {
      throw new CniError(ErrorCode.TryAgainLater, `bridge port is not forwarding after ${PORT_FORWARDING_BOUND_MS / 1000} s (state ${state ?? 'unknown'})`);
    }
    sleepMs(pause);
    link = nl.linkByIndex(index);
  }
}

interface Addressing {
  /** The container's addresses, each with its subnet's prefix. */
  addresses: CIDR[];
  /** Gateway per family, from IPAM or (isGateway) the subnet's first address. */
  gateways: Map<Family, IP>;
  /** Gateways with their subnet prefix, to put on the bridge. */
  bridgeAddresses: CIDR[];
  routes: { dst: CIDR; gw?: IP }[];
}

function addressing(c: BridgeConf, r: Result): Addressing {
  const out: Addressing = { addresses: [], gateways: new Map(), bridgeAddresses: [], routes: [] };
  for (const ip of r.ips ?? []) {
    const cidr = parseCIDR(ip.address)!;
    out.addresses.push(cidr);
    const family = cidr.ip.family;
    let gw = ip.gateway ? parseIP(ip.gateway)! : undefined;
    if (!gw && c.isGateway) gw = addToIP(networkOf(cidr), 1)!;
    if (gw && !out.gateways.has(family)) out.gateways.set(family, gw);
    if (gw && c.isGateway && !out.bridgeAddresses.some((b) => ipEqual(b.ip, gw!))) out.bridgeAddresses.push({ ip: gw, prefix: cidr.prefix });
  }
  for (const rt of r.routes ?? []) out.routes.push({ dst: parseCIDR(rt.dst)!, gw: rt.gw ? parseIP(rt.gw)! : undefined });
  return out;
}

async function add(ctx: Context<BridgeConf>): Promise<Result> {
  const c = ctx.conf;
  const { containerID, ifname, netns } = ctx.args;
  mark('add');
  const mac = requestedMac(ctx);
  const hostName = hostVethName(containerID, ifname);
  return attach(ctx, hostName, async ({ nsfd, host, rollback }) => {
    // IPAM before anything on the host: a bad IPAM section or an exhausted range creates nothing at all.
    const ipam = hasIpam(c) ? await allocate(ctx, rollback) : undefined;
    mark('ipam');
    const plan = ipam ? addressing(c, ipam) : undefined;
    const br = ensureBridge(host, c.bridge, { mtu: c.mtu, promisc: c.promiscMode });

    mark('bridge');
    const hostLink = createVeth(host, `${containerID}/${ifname}`, { hostName, ifname, nsfd, mtu: c.mtu, mac, master: br.index, hostIPv6: false }, rollback);
    if (c.hairpinMode || c.portIsolation) host.bridgePortSet(hostLink.index, { hairpin: c.hairpinMode, isolated: c.portIsolation });

    mark('veth');
    // An internal network has no way off the host: no default route, whatever IPAM or the config say.
    const routes = plan ? containerRoutes(plan.routes, plan.gateways, c.isDefaultGateway && !c.internal).filter((r) => !c.internal || r.dst !== null) : [];
    const ctrMac = configureContainer(nsfd, {
      ifname, addresses: plan?.addresses ?? [], routes, enabledad: c.enabledad, up: !c.disableContainerInterface,
    });

    mark('container');
    if (plan && c.isGateway) {
      ensureGatewayAddresses(host, br, plan.bridgeAddresses, c.forceAddress);
      enableForwarding(new Set(plan.addresses.map((a) => a.ip.family)));
    }
    if (plan && c.ipMasq && !c.internal) ensureMasquerade(ctx.conf.name, plan.addresses);
    mark('masq');
    ensureIsolation(isolationOf(c));
    mark('gateway+masq');
    if (!c.disableContainerInterface) waitForwarding(host, hostLink.index);
    mark('forwarding');

    const bridgeNow = host.linkByIndex(br.index) ?? br;
    const interfaces: Interface[] = [
      { name: bridgeNow.name, mac: bridgeNow.mac, mtu: bridgeNow.mtu },
      { name: hostName, mac: hostLink.mac, mtu: hostLink.mtu },
      { name: ifname, mac: ctrMac, mtu: hostLink.mtu, sandbox: netns },
    ];
    const result: Result = { cniVersion: ctx.version, interfaces };
    if (ipam && plan) {
      result.ips = ipam.ips!.map((ip) => ({ ...ip, gateway: ip.gateway ?? (plan.gateways.get(parseCIDR(ip.address)!.ip.family) ? formatIP(plan.gateways.get(parseCIDR(ip.address)!.ip.family)!) : undefined), interface: 2 }));
      const resultRoutes: RouteConfig[] = [...(ipam.routes ?? [])];
      for (const r of routes) {
        if (r.dst === null && !resultRoutes.some((x) => parseCIDR(x.dst)?.prefix === 0 && parseCIDR(x.dst)?.ip.family === r.family)) {
          resultRoutes.push({ dst: r.family === 4 ? '0.0.0.0/0' : '::/0', gw: formatIP(r.gateway!) });
        }
      }
      if (resultRoutes.length) result.routes = resultRoutes;
      if (ipam.dns) result.dns = ipam.dns;
    }
    if (c.dns && Object.keys(c.dns).length) result.dns = c.dns;
    await shapeTraffic(ctx, result, requestedBandwidth(ctx), rollback);
    mark('bandwidth');
    await publishPorts(ctx, result, rollback);
    mark('ports');
    ctx.log.info('ADD', { network: c.name, containerID, ifname, hostVeth: hostName, ips: result.ips?.map((i) => i.address) });
    return result;
  });
}

async function del(ctx: Context<BridgeConf>): Promise<void> {
  await unpublishPorts(ctx);
  mark('del: ports');
  await deleteVethAttachment(ctx, hostVethName(ctx.args.containerID, ctx.args.ifname), shapingLinks(ctx));
  ctx.log.info('DEL', { network: ctx.conf.name, containerID: ctx.args.containerID, ifname: ctx.args.ifname });
}

const isolationOf = (c: BridgeConf): IsolationSettings => ({ member: { bridge: c.bridge }, isolate: c.isolation === 'network', internal: c.internal, icc: c.icc, allowBridges: c.allowBridges, allowNetworks: c.allowNetworks });

async function check(ctx: Context<BridgeConf>): Promise<void> {
  const c = ctx.conf;
  await checkVethAttachment(ctx, hostVethName(ctx.args.containerID, ctx.args.ifname), ({ host, hostLink, prev, problems }) => {
    const br = host.linkByName(c.bridge);
    const brIface = (prev.interfaces ?? []).find((i) => i.name === c.bridge && !i.sandbox);
    if (!br || br.kind !== 'bridge') problems.push(`bridge ${c.bridge} is missing`);
    else {
      if (brIface?.mac && brIface.mac !== br.mac) problems.push(`bridge ${c.bridge} has MAC ${br.mac}, the ADD reported ${brIface.mac}`);
      if (c.promiscMode !== ((br.flags & C.IFF_PROMISC) !== 0)) problems.push(`bridge ${c.bridge} promiscuous mode differs from promiscMode ${c.promiscMode}`);
      if (hostLink && hostLink.master !== br.index) problems.push(`${hostLink.name} is not attached to ${c.bridge}`);
      problems.push(...isolationProblems(isolationOf(c), br));
    }
  });
  await checkPorts(ctx, ctx.prevResult!);
  await checkShaping(ctx, ctx.prevResult!, requestedBandwidth(ctx));
}

export const bridgePlugin: PluginSpec<BridgeConf> = {
  name: 'tether-bridge',
  about: 'tether-bridge: containers on a Linux bridge through veth pairs (docker0 style), configured over netlink',
  parseConfig: parseBridgeConf,
  add,
  del,
  check,
  ...ipamForwarders,
  async gc(ctx, valid) {
    await gcPorts(ctx, valid);
    await ipamForwarders.gc(ctx);
  },
};
