import { CniError, ErrorCode } from '../../lib/cni/errors.js';
import { cidrsOverlap, formatCIDR, formatIP, ipEqual, type CIDR } from '../../lib/ip/addr.js';
import { randomLocalMAC } from '../../lib/ip/mac.js';
import * as C from '../../lib/netlink/constants.js';
import type { Netlink } from '../../lib/netlink/handle.js';
import type { Link } from '../../lib/netlink/link.js';
import { NetlinkError } from '../../lib/netlink/socket.js';
import { sysctlSet } from '../../lib/netns/sysctl.js';

const exists = (e: unknown) => e instanceof NetlinkError && e.code === 'EEXIST';

function trySysctl(key: string, value: number): void {
  try { sysctlSet(key, value); } catch { /* IPv6 disabled on this host: the key does not exist */ }
}

/**
 * The bridge, created on first use and reused afterwards. Parallel ADDs race to create it, so EEXIST
 * means "someone else just did". It gets a fixed random MAC at creation: otherwise a bridge takes the
 * lowest MAC of its ports and changes it as containers come and go.
 */
export function ensureBridge(nl: Netlink, name: string, opts: { mtu?: number; promisc: boolean }): Link {
  let br = nl.linkByName(name);
  if (!br) {
    try {
      br = nl.linkAdd({ kind: 'bridge', name, mtu: opts.mtu, mac: randomLocalMAC(), up: true, bridge: { stpState: 0, forwardDelay: 0 } });
      trySysctl(`net/ipv6/conf/${name}/accept_ra`, 0);
    } catch (e) {
      if (!exists(e)) throw e;
    }
    br ??= nl.linkByName(name);
    if (!br) throw new CniError(ErrorCode.Internal, `bridge "${name}" vanished while it was being created`);
  }
  if (br.kind !== 'bridge') {
    throw new CniError(ErrorCode.InvalidNetworkConfig, `"${name}" already exists and is ${br.kind ? `a ${br.kind}` : 'a device'}, not a bridge`, 'bridge');
  }
  const promisc = (br.flags & C.IFF_PROMISC) !== 0;
  if (!br.up || (opts.promisc && !promisc)) {
    nl.linkSet(br.index, { up: true, ...(opts.promisc ? { promisc: true } : {}) });
    br = nl.linkByIndex(br.index)!;
  }
  return br;
}

/**
 * Puts each gateway (address with its subnet's prefix) on the bridge. A different address in the same
 * subnet is an error unless forceAddress, as with the reference plugin; an identical one is fine.
 */
export function ensureGatewayAddresses(nl: Netlink, br: Link, gateways: CIDR[], forceAddress: boolean): void {
  const held = nl.addrs({ index: br.index }).filter((a) => a.scope === C.RT_SCOPE_UNIVERSE);
  for (const gw of gateways) {
    if (held.some((a) => ipEqual(a.cidr.ip, gw.ip) && a.cidr.prefix === gw.prefix)) continue;
    const conflicting = held.filter((a) => a.family === gw.ip.family && cidrsOverlap(a.cidr, gw));
    if (conflicting.length && !forceAddress) {
      throw new CniError(ErrorCode.InvalidNetworkConfig,
        `bridge "${br.name}" already has ${conflicting.map((a) => formatCIDR(a.cidr)).join(', ')}, not the gateway ${formatCIDR(gw)}; set "forceAddress": true to replace it`, 'forceAddress');
    }
    for (const a of conflicting) nl.addrDel(br.index, a.cidr);
    try {
      // No DAD on the gateway: a tentative gateway would leave containers without a route for seconds.
      nl.addrAdd(br.index, gw, gw.ip.family === 6 ? { flags: C.IFA_F_NODAD } : {});
    } catch (e) {
      if (!exists(e)) throw e;
    }
  }
}

export const describeGateway = (gw: CIDR) => `${formatIP(gw.ip)}/${gw.prefix}`;
