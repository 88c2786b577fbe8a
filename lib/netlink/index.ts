export * as C from './constants.js';
export { Netlink } from './handle.js';
export { NetlinkError } from './socket.js';
export type { Link, NewLink, LinkChanges, BridgeOptions, BridgePortOptions, VxlanOptions } from './link.js';
export type { Address, AddrOptions } from './addr.js';
export type { Route } from './route.js';
export type { Neighbor } from './neigh.js';
