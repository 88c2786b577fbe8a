import { closeSync } from 'node:fs';
import { CniError, ErrorCode, invalidConfig } from '../../lib/cni/errors.js';
import type { Context } from '../../lib/cni/skel.js';
import type { Interface, Result } from '../../lib/cni/types.js';
import { ipEqual, networkOf, parseCIDR, parseIP } from '../../lib/ip/addr.js';
import * as C from '../../lib/netlink/constants.js';
import { Netlink } from '../../lib/netlink/handle.js';
import type { Link } from '../../lib/netlink/link.js';
import { checkIpam } from './ipam.js';
import { openContainer } from './netns.js';

/** What the shared part of CHECK found, for a plugin to compare its own parts against. */
export interface VethFindings {
  prev: Result;
  /** The container interface as prevResult lists it, and its index there. */
  ctrIface: Interface;
  ctrIndex: number;
  /** The two ends as the kernel has them now (absent when missing). */
  ctrLink?: Link;
  hostLink?: Link;
  /** Handles on the host and on the container namespace, open while the plugin's checks run. */
  host: Netlink;
  ctr: Netlink;
  /** Every difference found; the plugin appends its own. */
  problems: string[];
}

/**
 * CHECK of a veth attachment against prevResult: IPAM's CHECK, then the container interface (in the
 * sandbox the ADD reported, a veth, its MAC), the host end (present, its peer), every address and
 * route of the container, then the plugin's own checks. Fails with code 100 listing every difference.
 */
export async function checkVethAttachment(ctx: Context, hostName: string, own: (f: VethFindings) => void): Promise<void> {
  const prev = ctx.prevResult;
  if (!prev) throw invalidConfig('prevResult', 'is required for CHECK (the result of the ADD)');
  await checkIpam(ctx);
  const { ifname, netns, containerID } = ctx.args;
  const ifaces = prev.interfaces ?? [];
  const ctrIndex = ifaces.findIndex((i) => i.name === ifname && i.sandbox);
  const ctrIface = ifaces[ctrIndex];
  if (!ctrIface) throw new CniError(ErrorCode.CheckFailed, `prevResult lists no interface ${ifname} in a sandbox`);
  const problems: string[] = [];
  if (ctrIface.sandbox !== netns) problems.push(`CNI_NETNS ${netns} is not the sandbox ${ctrIface.sandbox} of the ADD`);
  Netlink.within((host) => {
    const nsfd = openContainer(ctx);
    try {
      Netlink.within({ fd: nsfd }, (ctr) => {
        const f: VethFindings = { prev, ctrIface, ctrIndex, host, ctr, problems };
        const link = ctr.linkByName(ifname);
        const peer = host.linkByName(hostName);
        if (!peer) problems.push(`host end ${hostName} is missing`);
        else f.hostLink = peer;
        if (!link) problems.push(`${ifname} is missing in ${netns}`);
        else {
          f.ctrLink = link;
          if (link.kind !== 'veth') problems.push(`${ifname} is a ${link.kind || 'device'}, not a veth`);
          if (ctrIface.mac && link.mac !== ctrIface.mac) problems.push(`${ifname} has MAC ${link.mac}, the ADD reported ${ctrIface.mac}`);
          if (peer && link.parent !== peer.index) problems.push(`${hostName} is not the peer of ${ifname}`);
          const held = ctr.addrs({ index: link.index });
          for (const ip of prev.ips ?? []) {
            if (ip.interface !== undefined && ip.interface !== ctrIndex) continue;
            const want = parseCIDR(ip.address)!;
            if (!held.some((a) => ipEqual(a.cidr.ip, want.ip) && a.cidr.prefix === want.prefix)) problems.push(`address ${ip.address} is missing on ${ifname}`);
          }
          for (const r of prev.routes ?? []) {
            const dst = parseCIDR(r.dst)!;
            const present = ctr.routes(dst.ip.family, { table: r.table ?? C.RT_TABLE_MAIN }).some((k) =>
              (k.dst ? k.dst.prefix === dst.prefix && ipEqual(networkOf(k.dst), networkOf(dst)) : dst.prefix === 0)
              && (!r.gw || (k.gateway !== undefined && ipEqual(k.gateway, parseIP(r.gw)!))));
            if (!present) problems.push(`route ${r.dst}${r.gw ? ` via ${r.gw}` : ''} is missing in the container`);
          }
        }
        own(f);
      });
    } finally {
      closeSync(nsfd);
    }
  });
  if (problems.length) throw new CniError(ErrorCode.CheckFailed, `CHECK failed for ${containerID}/${ifname}: ${problems.join('; ')}`, problems.join('\n'));
}
