import { addToIP, lastOf, networkOf, type CIDR, type IP } from '../ip/addr.js';
import { NFT_SET_ELEM_INTERVAL_END, type SetElement } from '../netlink/nft-set.js';
import { PROTOCOL_NUMBER, type Protocol } from './mapping.js';

// nftables lays concatenated keys out as fields each padded to 4 bytes: an address as is, the
// protocol number as one byte, the port as two bytes in network order.

function proto(p: Protocol): Buffer { return Buffer.from([PROTOCOL_NUMBER[p], 0, 0, 0]); }
function port(n: number): Buffer { return Buffer.from([n >> 8, n & 0xff, 0, 0]); }

/** Key of a mapping on every host address: protocol . port. */
export function wildKey(p: Protocol, hostPort: number): Buffer { return Buffer.concat([proto(p), port(hostPort)]); }
/** Key of a mapping on one host address: address . protocol . port. */
export function hostKey(ip: IP, p: Protocol, hostPort: number): Buffer { return Buffer.concat([Buffer.from(ip.bytes), proto(p), port(hostPort)]); }
/** Data of either: the pod's address . its port. */
export function target(ip: IP, containerPort: number): Buffer { return Buffer.concat([Buffer.from(ip.bytes), port(containerPort)]); }

/** The two elements of an interval set that cover a prefix: its first address, and the end marker one past its last. */
export function prefixElements(c: CIDR): SetElement[] {
  const start: SetElement = { key: Buffer.from(networkOf(c).bytes) };
  const past = addToIP(lastOf(c), 1);
  return past ? [start, { key: Buffer.from(past.bytes), flags: NFT_SET_ELEM_INTERVAL_END }] : [start];
}
