/**
 * The program names the multicall binary answers to as links (dist/bin, `cnictl install`). The dispatch
 * table that maps each to its code is bin/programs.ts; this list is the contract both it and the
 * installer follow, so neither reaches into the other.
 */
export const LINKS = ['cnictl', 'tether-bridge', 'tether-ipam', 'tether-bgp-route', 'tether-vxlan', 'tether-portmap', 'tether-bandwidth', 'tetherd'] as const;
export type LinkName = (typeof LINKS)[number];

/** The binary itself: every link points at it. */
export const BINARY = 'tether';
