import type { Context, PluginSpec } from '../../lib/cni/skel.js';
import type { Result } from '../../lib/cni/types.js';
import { formatCIDR, formatIP, ipEqual, parseCIDR, type CIDR, type Family } from '../../lib/ip/addr.js';
import { formatMAC, parseMAC } from '../../lib/ip/mac.js';
import * as C from '../../lib/netlink/constants.js';
import type { Netlink } from '../../lib/netlink/handle.js';
import { mark } from '../../lib/trace.js';
import { attach } from '../common/attach.js';
import { checkVethAttachment } from '../common/check.js';
import { configureContainer } from '../common/container.js';
import { enableForwarding } from '../common/forwarding.js';
import { allocate, ipamForwarders } from '../common/ipam.js';
import { requestedMac } from '../common/mac.js';
import { hostVethName } from '../common/names.js';
import { checkShaping, requestedBandwidth, shapeTraffic, shapingLinks } from '../common/bandwidth.js';
import { checkPorts, gcPorts, publishPorts, unpublishPorts } from '../common/ports.js';
import { createVeth, deleteVethAttachment } from '../common/veth.js';
import { ensureIsolation, isolationProblems, type IsolationSettings } from '../common/isolation.js';
import { parseBgpRouteConf, type BgpRouteConf } from './config.js';
import { configureHostEnd, hostProblems, routeToContainer } from './host.js';
import { GATEWAY_V4, HOST_MAC, HOST_VETH_PREFIX, gatewayOf, planL3 } from './plan.js';

const hostName = (ctx: Context) => hostVethName(ctx.args.containerID, ctx.args.ifname, HOST_VETH_PREFIX);
const HOST_MAC_TEXT = formatMAC(HOST_MAC);

const isolationOf = (c: BgpRouteConf): IsolationSettings => ({ member: { routed: c.name }, isolate: c.isolation === 'network', internal: false, icc: true, allowBridges: c.allowBridges, allowNetworks: c.allowNetworks });

async function add(ctx: Context<BgpRouteConf>): Promise<Result> {
  const c = ctx.conf;
  const { containerID, ifname, netns } = ctx.args;
  mark('add');
  const mac = requestedMac(ctx);
  const name = hostName(ctx);
  return attach(ctx, name, async ({ nsfd, host, rollback }) => {
    // IPAM first: a bad IPAM section or an exhausted range creates nothing at all.
    const ipam = await allocate(ctx, rollback);
    mark('ipam');
    const plan = planL3(ipam);
    const hostLink = createVeth(host, `${containerID}/${ifname}`, { hostName: name, ifname, nsfd, mtu: c.mtu, mac, hostMac: HOST_MAC }, rollback);
    configureHostEnd(name, plan.families);
    mark('veth');
    const ctrMac = configureContainer(nsfd, {
      ifname, addresses: plan.addresses, routes: plan.containerRoutes, neighbors: plan.containerNeighbors, enabledad: false, up: true,
    });
    mark('container');
    // A borrowed address (from another node's block) gets the same /32: announcing it is the node agent's job.
    routeToContainer(host, hostLink, plan.addresses, parseMAC(ctrMac)!);
    enableForwarding(plan.families);
    mark('host routes');
    // Isolation is per network: this network's group goes on the container's host veth (no bridge to carry it).
    ensureIsolation(isolationOf(c), name);
    mark('isolation');
    const result: Result = {
      cniVersion: ctx.version,
      interfaces: [
        { name, mac: HOST_MAC_TEXT, mtu: hostLink.mtu },
        { name: ifname, mac: ctrMac, mtu: hostLink.mtu, sandbox: netns },
      ],
      ips: plan.addresses.map((a) => ({ address: formatCIDR(a), gateway: formatIP(gatewayOf(a.ip.family)), interface: 1 })),
      routes: plan.resultRoutes,
    };
    if (ipam.dns) result.dns = ipam.dns;
    if (c.dns && Object.keys(c.dns).length) result.dns = c.dns;
    await shapeTraffic(ctx, result, requestedBandwidth(ctx), rollback);
    await publishPorts(ctx, result, rollback);
    ctx.log.info('ADD', { network: c.name, containerID, ifname, hostVeth: name, ips: result.ips!.map((i) => i.address) });
    return result;
  });
}

async function del(ctx: Context<BgpRouteConf>): Promise<void> {
  await unpublishPorts(ctx);
  await deleteVethAttachment(ctx, hostName(ctx), shapingLinks(ctx));
  ctx.log.info('DEL', { network: ctx.conf.name, containerID: ctx.args.containerID, ifname: ctx.args.ifname });
}

/** The container's side beyond the shared checks: up, the static gateway entries, the on-link route. */
function containerProblems(ctr: Netlink, index: number, ifname: string, families: Set<Family>): string[] {
  const problems: string[] = [];
  for (const f of families) {
    const gw = gatewayOf(f);
    const n = ctr.neighbors(f === 4 ? C.AF_INET : C.AF_INET6, index).find((x) => x.ip && ipEqual(x.ip, gw));
    if (!n || !(n.state & C.NUD_PERMANENT) || !n.mac || formatMAC(n.mac) !== HOST_MAC_TEXT) {
      problems.push(`the container's neighbour entry ${formatIP(gw)} -> ${HOST_MAC_TEXT} on ${ifname} is ${n ? `${n.mac ? formatMAC(n.mac) : 'without MAC'} (state 0x${n.state.toString(16)})` : 'missing'}`);
    }
  }
  if (families.has(4) && !ctr.routes(4, { oif: index }).some((r) => r.dst?.prefix === 32 && ipEqual(r.dst.ip, GATEWAY_V4) && !r.gateway)) {
    problems.push(`the on-link route to ${formatIP(GATEWAY_V4)} is missing on ${ifname}`);
  }
  return problems;
}

async function check(ctx: Context<BgpRouteConf>): Promise<void> {
  await checkVethAttachment(ctx, hostName(ctx), ({ prev, ctrIndex, ctrLink, hostLink, host, ctr, problems }) => {
    const addresses: CIDR[] = (prev.ips ?? []).filter((i) => i.interface === undefined || i.interface === ctrIndex).map((i) => parseCIDR(i.address)!);
    const families = new Set<Family>(addresses.map((a) => a.ip.family));
    if (hostLink) {
      if (hostLink.kind !== 'veth') problems.push(`${hostLink.name} is a ${hostLink.kind || 'device'}, not a veth`);
      if (hostLink.mac !== HOST_MAC_TEXT) problems.push(`${hostLink.name} has MAC ${hostLink.mac}, not ${HOST_MAC_TEXT}`);
      if (!hostLink.up) problems.push(`${hostLink.name} is down`);
      if (ctrLink) problems.push(...hostProblems(host, hostLink, addresses, ctrLink.mac, families));
      problems.push(...isolationProblems(isolationOf(ctx.conf), hostLink));
    }
    if (ctrLink) {
      if (!ctrLink.up) problems.push(`${ctx.args.ifname} is down`);
      problems.push(...containerProblems(ctr, ctrLink.index, ctx.args.ifname, families));
    }
  });
  await checkPorts(ctx, ctx.prevResult!);
  await checkShaping(ctx, ctx.prevResult!, requestedBandwidth(ctx));
}

export const bgpRoutePlugin: PluginSpec<BgpRouteConf> = {
  name: 'tether-bgp-route',
  about: 'tether-bgp-route: containers routed by the node (Calico style): a /32 behind a veth with no bridge, the node as the only gateway',
  parseConfig: parseBgpRouteConf,
  add,
  del,
  check,
  ...ipamForwarders,
  async gc(ctx, valid) {
    await gcPorts(ctx, valid);
    await ipamForwarders.gc(ctx);
  },
};
