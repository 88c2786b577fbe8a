import { closeSync } from 'node:fs';
import { cniArg } from '../../lib/cni/env.js';
import { CniError, ErrorCode, invalidConfig } from '../../lib/cni/errors.js';
import { delegate } from '../../lib/cni/invoke.js';
import type { Context, PluginSpec } from '../../lib/cni/skel.js';
import type { Interface, Result, RouteConfig } from '../../lib/cni/types.js';
import { addToIP, formatIP, ipEqual, networkOf, parseCIDR, parseIP, type CIDR, type Family, type IP } from '../../lib/ip/addr.js';
import { parseMAC } from '../../lib/ip/mac.js';
import * as C from '../../lib/netlink/constants.js';
import { Netlink } from '../../lib/netlink/handle.js';
import type { Link } from '../../lib/netlink/link.js';
import { NetlinkError } from '../../lib/netlink/socket.js';
import { NetnsNotFoundError, openNetns } from '../../lib/netns/netns.js';
import { parseBridgeConf, hasIpam, type BridgeConf } from './config.js';
import { configureContainer, containerRoutes, sleepMs } from './container.js';
import { enableForwarding, ensureBridge, ensureGatewayAddresses } from './host.js';
import { ensureMasquerade } from './masq.js';
import { hostVethName } from './names.js';
import { mark } from '../../lib/trace.js';

const PORT_WAIT_MS = [0, 1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 1000];

/** The MAC the runtime asked for: runtimeConfig.mac, else args.cni.mac, else CNI_ARGS MAC. */
function requestedMac(ctx: Context<BridgeConf>): Uint8Array | undefined {
  const rc = (ctx.conf.runtimeConfig as { mac?: unknown } | undefined)?.mac;
  const args = (ctx.conf.args as { cni?: { mac?: unknown } } | undefined)?.cni?.mac;
  const raw = rc ?? args ?? cniArg(ctx.args, 'MAC');
  if (raw === undefined || raw === '') return undefined;
  const mac = typeof raw === 'string' ? parseMAC(raw) : null;
  if (!mac) throw invalidConfig(rc !== undefined ? 'runtimeConfig.mac' : args !== undefined ? 'args.cni.mac' : 'CNI_ARGS MAC', 'must be a MAC address such as 02:42:ac:11:00:02', raw);
  return mac;
}

/** A new port starts disabled and turns forwarding asynchronously; return only once traffic can flow. */
function waitForwarding(nl: Netlink, index: number): void {
  let state: number | undefined;
  for (const ms of PORT_WAIT_MS) {
    sleepMs(ms);
    state = nl.linkByIndex(index)?.bridgePort?.state;
    if (state === C.BR_STATE_FORWARDING) return;
  }
  throw new CniError(ErrorCode.TryAgainLater, `bridge port is not forwarding after ${PORT_WAIT_MS.reduce((a, b) => a + b) / 1000} s (state ${state ?? 'unknown'})`);
}

function openContainer(ctx: Context): number {
  try {
    return openNetns(ctx.args.netns);
  } catch (e) {
    if (e instanceof NetnsNotFoundError) throw new CniError(ErrorCode.InvalidEnvironment, `CNI_NETNS ${ctx.args.netns} does not exist`, 'CNI_NETNS');
    throw e;
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
  if (!r.ips?.length) throw new CniError(ErrorCode.Internal, `IPAM plugin "${c.ipam!.type}" returned no addresses`);
  const out: Addressing = { addresses: [], gateways: new Map(), bridgeAddresses: [], routes: [] };
  for (const ip of r.ips) {
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
  const nsfd = openContainer(ctx);
  const host = Netlink.open();
  const undo: (() => Promise<void> | void)[] = [];
  try {
    // Refuse before touching anything: a second ADD must not disturb the first one's interface or address.
    const taken = Netlink.atFd(nsfd);
    try {
      if (taken.linkByName(ifname)) throw new CniError(ErrorCode.InvalidEnvironment, `interface ${ifname} already exists in ${netns}`, 'CNI_IFNAME');
    } finally { taken.close(); }
    // IPAM before anything on the host: a bad IPAM section or an exhausted range creates nothing at all.
    let ipam: Result | undefined;
    if (hasIpam(c)) {
      ipam = await delegate('ADD', c.ipam!.type, ctx);
      undo.push(async () => { await delegate('DEL', c.ipam!.type, ctx); });
    }
    mark('ipam');
    const plan = ipam ? addressing(c, ipam) : undefined;
    const br = ensureBridge(host, c.bridge, { mtu: c.mtu, promisc: c.promiscMode });

    mark('bridge');
    const hostName = hostVethName(containerID, ifname);
    try {
      host.linkAdd({
        kind: 'veth', name: hostName, mtu: c.mtu, master: br.index, up: true,
        // The container end is born inside the container, already named: no move, no rename.
        peer: { name: ifname, netnsFd: nsfd, mtu: c.mtu, mac },
      });
    } catch (e) {
      if (e instanceof NetlinkError && e.code === 'EEXIST') {
        throw new CniError(ErrorCode.InvalidEnvironment, `host interface ${hostName} for ${containerID}/${ifname} already exists: is this attachment already set up?`, 'CNI_CONTAINERID');
      }
      throw e;
    }
    const hostLink: Link | null = host.linkByName(hostName);
    if (!hostLink) throw new CniError(ErrorCode.Internal, `host interface ${hostName} vanished after creation`);
    undo.push(() => { host.linkDel(hostLink.index); });
    if (c.hairpinMode || c.portIsolation) host.bridgePortSet(hostLink.index, { hairpin: c.hairpinMode, isolated: c.portIsolation });

    mark('veth');
    const routes = plan ? containerRoutes(plan.routes, plan.gateways, c.isDefaultGateway) : [];
    const ctrMac = configureContainer(nsfd, {
      ifname, addresses: plan?.addresses ?? [], routes, enabledad: c.enabledad, up: !c.disableContainerInterface,
    });

    mark('container');
    if (plan && c.isGateway) {
      ensureGatewayAddresses(host, br, plan.bridgeAddresses, c.forceAddress);
      enableForwarding(new Set(plan.addresses.map((a) => a.ip.family)));
    }
    if (plan && c.ipMasq) ensureMasquerade(ctx.conf.name, plan.addresses);
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
    ctx.log.info('ADD', { network: c.name, containerID, ifname, hostVeth: hostName, ips: result.ips?.map((i) => i.address) });
    undo.length = 0;
    return result;
  } catch (e) {
    // Undo in reverse: the veth (its peer goes with it), then the address.
    for (const step of undo.reverse()) {
      try { await step(); } catch (u) { ctx.log.error('rollback step failed', { error: (u as Error).message }); }
    }
    throw e;
  } finally {
    host.close();
    closeSync(nsfd);
    mark('closed');
  }
}

/** Removes the container's interface; returns quietly when it, or its namespace, is already gone. */
function removeInterface(ctx: Context<BridgeConf>): void {
  const { netns, ifname, containerID } = ctx.args;
  if (netns) {
    let fd: number | undefined;
    try {
      fd = openNetns(netns);
      const nl = Netlink.atFd(fd);
      try {
        const link = nl.linkByName(ifname);
        if (link?.kind === 'veth') nl.linkDel(link.index);
      } finally { nl.close(); }
    } catch (e) {
      // A vanished namespace, or a path that no longer names one: nothing to do inside it.
      if (!(e instanceof NetnsNotFoundError) && !/not a network namespace/.test((e as Error).message)) throw e;
    } finally {
      if (fd !== undefined) closeSync(fd);
    }
  }
  // Whatever happened inside, the host end must not outlive the attachment (e.g. DEL with an empty CNI_NETNS).
  const host = Netlink.open();
  try {
    const veth = host.linkByName(hostVethName(containerID, ifname));
    if (veth?.kind === 'veth') host.linkDel(veth.index);
  } finally { host.close(); }
}

async function del(ctx: Context<BridgeConf>): Promise<void> {
  const c = ctx.conf;
  // The address goes first and regardless of the namespace: a DEL must never leak it.
  mark('del');
  let ipamError: unknown;
  if (hasIpam(c)) {
    try { await delegate('DEL', c.ipam!.type, ctx); } catch (e) { ipamError = e; }
  }
  mark('ipam');
  removeInterface(ctx);
  mark('removed');
  if (ipamError) throw ipamError;
  ctx.log.info('DEL', { network: c.name, containerID: ctx.args.containerID, ifname: ctx.args.ifname });
}

async function check(ctx: Context<BridgeConf>): Promise<void> {
  const c = ctx.conf;
  const prev = ctx.prevResult;
  if (!prev) throw invalidConfig('prevResult', 'is required for CHECK (the result of the ADD)');
  if (hasIpam(c)) await delegate('CHECK', c.ipam!.type, ctx);
  const problems: string[] = [];
  const ifaces = prev.interfaces ?? [];
  const ctrIdx = ifaces.findIndex((i) => i.name === ctx.args.ifname && i.sandbox);
  const ctrIface = ifaces[ctrIdx];
  if (!ctrIface) throw new CniError(ErrorCode.CheckFailed, `prevResult lists no interface ${ctx.args.ifname} in a sandbox`);
  if (ctrIface.sandbox !== ctx.args.netns) problems.push(`CNI_NETNS ${ctx.args.netns} is not the sandbox ${ctrIface.sandbox} of the ADD`);
  const host = Netlink.open();
  const nsfd = openContainer(ctx);
  try {
    const br = host.linkByName(c.bridge);
    const brIface = ifaces.find((i) => i.name === c.bridge && !i.sandbox);
    if (!br || br.kind !== 'bridge') problems.push(`bridge ${c.bridge} is missing`);
    else {
      if (brIface?.mac && brIface.mac !== br.mac) problems.push(`bridge ${c.bridge} has MAC ${br.mac}, the ADD reported ${brIface.mac}`);
      if (c.promiscMode !== ((br.flags & C.IFF_PROMISC) !== 0)) problems.push(`bridge ${c.bridge} promiscuous mode differs from promiscMode ${c.promiscMode}`);
    }
    const ctr = Netlink.atFd(nsfd);
    try {
      const link = ctr.linkByName(ctx.args.ifname);
      if (!link) problems.push(`${ctx.args.ifname} is missing in ${ctx.args.netns}`);
      else {
        if (link.kind !== 'veth') problems.push(`${ctx.args.ifname} is a ${link.kind || 'device'}, not a veth`);
        if (ctrIface.mac && link.mac !== ctrIface.mac) problems.push(`${ctx.args.ifname} has MAC ${link.mac}, the ADD reported ${ctrIface.mac}`);
        const hostName = hostVethName(ctx.args.containerID, ctx.args.ifname);
        const peer = host.linkByName(hostName);
        if (!peer) problems.push(`host end ${hostName} is missing`);
        else {
          if (link.parent !== peer.index) problems.push(`${hostName} is not the peer of ${ctx.args.ifname}`);
          if (br && peer.master !== br.index) problems.push(`${hostName} is not attached to ${c.bridge}`);
        }
        const held = ctr.addrs({ index: link.index });
        for (const ip of prev.ips ?? []) {
          if (ip.interface !== undefined && ip.interface !== ctrIdx) continue;
          const want = parseCIDR(ip.address)!;
          if (!held.some((a) => ipEqual(a.cidr.ip, want.ip) && a.cidr.prefix === want.prefix)) problems.push(`address ${ip.address} is missing on ${ctx.args.ifname}`);
        }
        for (const r of prev.routes ?? []) {
          const dst = parseCIDR(r.dst)!;
          const present = ctr.routes(dst.ip.family, { table: r.table ?? C.RT_TABLE_MAIN }).some((k) =>
            (k.dst ? k.dst.prefix === dst.prefix && ipEqual(networkOf(k.dst), networkOf(dst)) : dst.prefix === 0)
            && (!r.gw || (k.gateway !== undefined && ipEqual(k.gateway, parseIP(r.gw)!))));
          if (!present) problems.push(`route ${r.dst}${r.gw ? ` via ${r.gw}` : ''} is missing in the container`);
        }
      }
    } finally { ctr.close(); }
  } finally {
    host.close();
    closeSync(nsfd);
  }
  if (problems.length) throw new CniError(ErrorCode.CheckFailed, `CHECK failed for ${ctx.args.containerID}/${ctx.args.ifname}: ${problems.join('; ')}`, problems.join('\n'));
}

export const bridgePlugin: PluginSpec<BridgeConf> = {
  name: 'tether-bridge',
  about: 'tether-bridge: containers on a Linux bridge through veth pairs (docker0 style), configured over netlink',
  parseConfig: parseBridgeConf,
  add,
  del,
  check,
  async status(ctx) {
    if (hasIpam(ctx.conf)) await delegate('STATUS', ctx.conf.ipam!.type, ctx);
  },
  async gc(ctx) {
    if (hasIpam(ctx.conf)) await delegate('GC', ctx.conf.ipam!.type, ctx);
  },
};
