import type { CIDR, IP } from '../ip/addr.js';

/** An address family this speaker carries: AFI (1 IPv4, 2 IPv6) with SAFI 1 (unicast). */
export interface AfiSafi { afi: number; safi: number }

export interface GracefulRestartCapability {
  /** R bit: the sender has just restarted. */
  restarting: boolean;
  /** N bit (RFC 8538): graceful restart also after a NOTIFICATION. */
  notification: boolean;
  /** Seconds the receiver should keep the sender's routes after the session drops. */
  time: number;
  /** Families whose forwarding state the sender keeps over a restart (F bit). */
  families: (AfiSafi & { forwarding: boolean })[];
}

export interface Capabilities {
  multiprotocol: AfiSafi[];
  routeRefresh: boolean;
  enhancedRouteRefresh: boolean;
  /** The real ASN (capability 65); its presence means 4-octet AS numbers in AS_PATH. */
  as4?: number;
  gracefulRestart?: GracefulRestartCapability;
  /** Capabilities we do not interpret, kept so a round trip is lossless. */
  other: { code: number; value: Uint8Array }[];
}

export interface OpenMessage {
  type: 'open';
  version: number;
  /** The 2-octet My AS field (AS_TRANS when the real ASN is in capability 65). */
  myAs: number;
  holdTime: number;
  /** BGP identifier, dotted quad. */
  routerId: string;
  capabilities: Capabilities;
}

export interface AsPathSegment { type: number; asns: number[] }

export interface MpReach extends AfiSafi { nextHops: IP[]; nlri: CIDR[] }
export interface MpUnreach extends AfiSafi { withdrawn: CIDR[] }

export interface PathAttributes {
  origin?: number;
  asPath?: AsPathSegment[];
  nextHop?: IP;
  med?: number;
  localPref?: number;
  atomicAggregate?: boolean;
  communities?: number[];
  originatorId?: string;
  clusterList?: string[];
  mpReach?: MpReach;
  mpUnreach?: MpUnreach;
  /** Attributes we do not interpret (AGGREGATOR, extended communities, ...), passed on untouched. */
  other: { flags: number; type: number; value: Uint8Array }[];
}

export interface UpdateMessage {
  type: 'update';
  withdrawn: CIDR[];
  attributes: PathAttributes;
  nlri: CIDR[];
}

export interface NotificationMessage { type: 'notification'; code: number; subcode: number; data: Uint8Array }
export interface KeepaliveMessage { type: 'keepalive' }
export interface RouteRefreshMessage { type: 'route-refresh'; afi: number; subtype: number; safi: number }

export type Message = OpenMessage | UpdateMessage | NotificationMessage | KeepaliveMessage | RouteRefreshMessage;

/** What encoding and decoding depend on once a session is up. */
export interface CodecContext {
  /** Both sides sent capability 65: AS numbers in AS_PATH are 4 octets. */
  as4: boolean;
}

/** A protocol error that ends the session with this NOTIFICATION. */
export class BgpError extends Error {
  readonly code: number;
  readonly subcode: number;
  readonly data: Uint8Array;
  constructor(code: number, subcode: number, message: string, data: Uint8Array = new Uint8Array(0)) {
    super(message);
    this.name = 'BgpError';
    this.code = code;
    this.subcode = subcode;
    this.data = data;
  }
}

export function emptyAttributes(): PathAttributes { return { other: [] }; }

export function emptyCapabilities(): Capabilities {
  return { multiprotocol: [], routeRefresh: false, enhancedRouteRefresh: false, other: [] };
}
