import type { Family } from '../../lib/ip/addr.js';
import { sysctlSet } from '../../lib/netns/sysctl.js';

/** Routing between containers and the rest of the node, written only when not already on. */
export function enableForwarding(families: Set<Family>): void {
  if (families.has(4)) sysctlSet('net/ipv4/ip_forward', 1);
  if (families.has(6)) sysctlSet('net/ipv6/conf/all/forwarding', 1);
}
