import type { IP } from '../ip/addr.js';
import { PROTOCOL_NUMBER, type Protocol } from './mapping.js';

// nftables lays concatenated keys out as fields each padded to 4 bytes: an address as is, the
// protocol number as one byte, the port as two bytes in network order.

function proto(p: Protocol): Buffer { return Buffer.from([PROTOCOL_NUMBER[p], 0, 0, 0]); }
function port(n: number): Buffer { return Buffer.from([n >> 8, n & 0xff, 0, 0]); }

/** Key of a mapping on every host address: protocol . port. */
export function wildKey(p: Protocol, hostPort: number): Buffer { return Buffer.concat([proto(p), port(hostPort)]); }
/** Key of a mapping on one host address: address . protocol . port. */
export function hostKey(ip: IP, p: Protocol, hostPort: number): Buffer { return Buffer.concat([Buffer.from(ip.bytes), proto(p), port(hostPort)]); }
/** Key of a set of bare ports (not concatenated: two bytes, no padding). */
export function portKey(n: number): Buffer { return Buffer.from([n >> 8, n & 0xff]); }
/** Data of either: the pod's address . its port. */
export function target(ip: IP, containerPort: number): Buffer { return Buffer.concat([Buffer.from(ip.bytes), port(containerPort)]); }
