import { CniError, ErrorCode } from '../cni/errors.js';
import { Netlink } from '../netlink/handle.js';
import { NetlinkError } from '../netlink/socket.js';
import { TC_H_INGRESS, TC_H_ROOT, type Tbf } from '../netlink/tc.js';
import type { BandwidthLimits } from './limits.js';

// Shaping in the kernel (the limits themselves are read in ./limits.ts, which a plugin loads on every
// exec; this module only when a container has limits or an ifb to remove).
export { parseBandwidth, type BandwidthLimits } from './limits.js';

/** How long a packet may wait in the bucket's queue, as the reference plugin allows. */
const LATENCY_S = 0.025;

function bucket(rateBits: number, burstBits: number): Tbf {
  const rateBytes = Math.max(1, Math.floor(rateBits / 8));
  const burstBytes = Math.ceil(burstBits / 8);
  return { rateBytes, burstBytes, limitBytes: Math.ceil(rateBytes * LATENCY_S) + burstBytes };
}

const here = <T>(fn: (nl: Netlink) => T) => Netlink.within(fn);

/** Applies the limits to the container whose host-side veth end is `hostIf`; `ifb` names its egress device. */
export function applyBandwidth(hostIf: string, ifb: string, l: BandwidthLimits): void {
  here((nl) => {
    const host = nl.linkByName(hostIf);
    if (!host) throw new CniError(ErrorCode.Internal, `bandwidth: host interface ${hostIf} does not exist`);
    if (l.ingressRate) nl.tbfReplace(host.index, bucket(l.ingressRate, l.ingressBurst!));
    if (l.egressRate) {
      let dev = nl.linkByName(ifb);
      if (!dev) {
        try { dev = nl.linkAdd({ kind: 'ifb', name: ifb, mtu: host.mtu, up: true }); } catch (e) {
          if (e instanceof NetlinkError && e.code === 'EOPNOTSUPP') throw new CniError(ErrorCode.Internal, 'bandwidth: this kernel has no ifb devices (module ifb), needed to shape egress');
          throw e;
        }
      }
      nl.tbfReplace(dev!.index, bucket(l.egressRate, l.egressBurst!));
      nl.qdiscDel(host.index, TC_H_INGRESS);
      nl.redirectIngress(host.index, dev!.index);
    }
  });
}

/** Removes what applyBandwidth made; anything already gone is fine. */
export function removeBandwidth(hostIf: string | undefined, ifb: string): void {
  here((nl) => {
    const dev = nl.linkByName(ifb);
    if (dev) nl.linkDel(dev.index);
    const host = hostIf ? nl.linkByName(hostIf) : null;
    if (host) {
      nl.qdiscDel(host.index, TC_H_INGRESS);
      if (nl.qdiscs(host.index).some((q) => q.parent === TC_H_ROOT && q.kind === 'tbf')) nl.qdiscDel(host.index, TC_H_ROOT);
    }
  });
}

/** What CHECK finds different from the limits (empty when they are in place). */
export function checkBandwidth(hostIf: string, ifb: string, l: BandwidthLimits): string[] {
  return here((nl) => {
    const problems: string[] = [];
    const host = nl.linkByName(hostIf);
    if (!host) return [`host interface ${hostIf} is missing`];
    const tbfOn = (index: number) => nl.qdiscs(index).find((q) => q.parent === TC_H_ROOT && q.kind === 'tbf');
    if (l.ingressRate) {
      const q = tbfOn(host.index);
      if (!q) problems.push(`no ingress limit (tbf) on ${hostIf}`);
      else if (q.tbf?.rateBytes !== bucket(l.ingressRate, l.ingressBurst!).rateBytes) problems.push(`ingress rate on ${hostIf} is ${(q.tbf?.rateBytes ?? 0) * 8} bit/s, not ${l.ingressRate}`);
    }
    if (l.egressRate) {
      const dev = nl.linkByName(ifb);
      const q = dev ? tbfOn(dev.index) : undefined;
      if (!dev) problems.push(`egress device ${ifb} is missing`);
      else if (!q) problems.push(`no egress limit (tbf) on ${ifb}`);
      else if (q.tbf?.rateBytes !== bucket(l.egressRate, l.egressBurst!).rateBytes) problems.push(`egress rate on ${ifb} is ${(q.tbf?.rateBytes ?? 0) * 8} bit/s, not ${l.egressRate}`);
      if (!nl.qdiscs(host.index).some((x) => x.parent === TC_H_INGRESS)) problems.push(`no redirect of ${hostIf}'s traffic to ${ifb}`);
    }
    return problems;
  });
}
