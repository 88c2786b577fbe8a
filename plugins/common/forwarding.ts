import type { Family } from '../../lib/ip/addr.js';
import { sysctlSet } from '../../lib/netns/sysctl.js';

/** The node-wide switches that make it route between containers and the rest of the node. */
export function forwardingSysctls(families: Set<Family>): [string, number][] {
  const out: [string, number][] = [];
  if (families.has(4)) out.push(['net/ipv4/ip_forward', 1]);
  if (families.has(6)) out.push(['net/ipv6/conf/all/forwarding', 1]);
  return out;
}

/** Routing between containers and the rest of the node, written only when not already on. */
export function enableForwarding(families: Set<Family>): void {
  for (const [key, value] of forwardingSysctls(families)) sysctlSet(key, value);
}
