// The libnetwork remote driver protocol as dockerd 20.10 speaks it: JSON bodies POSTed to
// /<Interface>.<Method> over a Unix socket. Field names are the wire's (Go's exported struct fields).
// Requests and answers here are what dockerd sent and accepted (../shared/reference/docker/captured).

/** The media type dockerd sends in Accept and reads back (it does not check the answer's type). */
export const PLUGIN_MEDIA_TYPE = 'application/vnd.docker.plugins.v1.2+json';

/** Option labels dockerd puts in CreateNetwork / CreateEndpoint / Join (libnetwork netlabel). */
export const Label = {
  generic: 'com.docker.network.generic',
  enableIPv6: 'com.docker.network.enable_ipv6',
  internal: 'com.docker.network.internal',
  mtu: 'com.docker.network.driver.mtu',
  bridgeName: 'com.docker.network.bridge.name',
  portMap: 'com.docker.network.portmap',
  exposedPorts: 'com.docker.network.endpoint.exposedports',
  macAddress: 'com.docker.network.endpoint.macaddress',
  requestAddressType: 'RequestAddressType',
  gatewayType: 'com.docker.network.gateway',
} as const;

export interface ActivateResponse { Implements: ('NetworkDriver' | 'IpamDriver')[] }

/** Every answer may be an error instead; dockerd shows Err to the user. */
export interface ErrorResponse { Err: string }

// ---- NetworkDriver

export interface CapabilitiesResponse { Scope: 'local' | 'global'; ConnectivityScope: 'local' | 'global' }

/** One pool of a network as its IPAM driver (ours or Docker's) handed it out. */
export interface IPAMData {
  AddressSpace: string;
  /** CIDR */
  Pool: string;
  /** CIDR: the gateway address with the pool's prefix. */
  Gateway?: string;
  AuxAddresses?: Record<string, string>;
}

export interface CreateNetworkRequest {
  NetworkID: string;
  /** Labels above; com.docker.network.generic holds the user's -o map. */
  Options: Record<string, unknown> | null;
  IPv4Data: IPAMData[] | null;
  IPv6Data: IPAMData[] | null;
}

export interface NetworkRequest { NetworkID: string }

export interface EndpointInterface {
  /** CIDR, or "" */
  Address: string;
  AddressIPv6: string;
  MacAddress: string;
}

export interface CreateEndpointRequest {
  NetworkID: string;
  EndpointID: string;
  Interface: EndpointInterface | null;
  Options: Record<string, unknown> | null;
}

/** The driver may fill Interface only when the request's was empty; tether never does. */
export interface CreateEndpointResponse { Interface?: Partial<EndpointInterface> }

export interface EndpointRequest { NetworkID: string; EndpointID: string }

export interface EndpointOperInfoResponse { Value: Record<string, unknown> }

export interface JoinRequest {
  NetworkID: string;
  EndpointID: string;
  /** The sandbox's netns path, visible in dockerd's mount namespace. */
  SandboxKey: string;
  Options: Record<string, unknown> | null;
}

export interface StaticRoute {
  Destination: string;
  /** 0: via NextHop; 1: connected. */
  RouteType: 0 | 1;
  NextHop?: string;
}

export interface JoinResponse {
  /** dockerd moves SrcName into the sandbox and names it DstPrefix + an index. */
  InterfaceName: { SrcName: string; DstPrefix: string };
  Gateway?: string;
  GatewayIPv6?: string;
  StaticRoutes: StaticRoute[];
  /** true: no docker_gwbridge second interface when there is no gateway (internal networks). */
  DisableGatewayService: boolean;
}

export interface ProgramExternalConnectivityRequest {
  NetworkID: string;
  EndpointID: string;
  Options: Record<string, unknown> | null;
}

/** -p as dockerd sends it: Proto 6 tcp, 17 udp, 132 sctp; HostPortEnd > HostPort for a range. */
export interface PortBinding {
  Proto: number;
  IP: string;
  Port: number;
  HostIP: string;
  HostPort: number;
  HostPortEnd: number;
}

export interface DiscoveryRequest { DiscoveryType: number; DiscoveryData: unknown }

export interface AllocateNetworkRequest {
  NetworkID: string;
  Options: Record<string, string> | null;
  IPv4Data: IPAMData[] | null;
  IPv6Data: IPAMData[] | null;
}

// ---- IpamDriver

export interface IpamCapabilitiesResponse { RequiresMACAddress: boolean; RequiresRequestReplay: boolean }

export interface AddressSpacesResponse { LocalDefaultAddressSpace: string; GlobalDefaultAddressSpace: string }

export interface RequestPoolRequest {
  AddressSpace: string;
  /** CIDR (--subnet), or "" for one the driver picks. */
  Pool: string;
  /** CIDR inside Pool (--ip-range), or "". */
  SubPool: string;
  Options: Record<string, string> | null;
  V6: boolean;
}

export interface RequestPoolResponse { PoolID: string; Pool: string; Data: Record<string, string> }

export interface PoolRequest { PoolID: string }

export interface RequestAddressRequest {
  PoolID: string;
  /** A plain address (--ip, --gateway), or "" for any. */
  Address: string;
  Options: Record<string, string> | null;
}

export interface RequestAddressResponse { Address: string; Data: Record<string, string> }

export interface ReleaseAddressRequest { PoolID: string; Address: string }

/** Every method of both interfaces; anything else is answered 404, which dockerd reads as "not implemented". */
export const NETWORK_METHODS = [
  'GetCapabilities', 'CreateNetwork', 'DeleteNetwork', 'AllocateNetwork', 'FreeNetwork', 'CreateEndpoint', 'EndpointOperInfo',
  'DeleteEndpoint', 'Join', 'Leave', 'DiscoverNew', 'DiscoverDelete', 'ProgramExternalConnectivity', 'RevokeExternalConnectivity',
] as const;
export const IPAM_METHODS = ['GetCapabilities', 'GetDefaultAddressSpaces', 'RequestPool', 'ReleasePool', 'RequestAddress', 'ReleaseAddress'] as const;
export type NetworkMethod = typeof NETWORK_METHODS[number];
export type IpamMethod = typeof IPAM_METHODS[number];

// ---- tether's own methods on the same socket (cnictl uses them; dockerd never calls them)

/** What Docker still has: `cnictl gc --docker` reads it from dockerd's API and sends it here. */
export interface ReconcileRequest {
  Endpoints: { NetworkID: string; EndpointID: string }[];
  /** Every address Docker's tether-IPAM networks hold (containers and gateways), without prefix. */
  Addresses: string[];
  /** Allocations younger than this are kept: their CreateEndpoint may still be on its way. */
  GraceMs?: number;
}

export interface ReconcileResponse {
  RemovedEndpoints: string[];
  RemovedVeths: string[];
  ReleasedAddresses: string[];
}

/** `POST /Tether.Refresh`: the driver re-reads the networks defined across hosts now (as it does every 30 s). */
export interface RefreshResponse {
  /** The -o mode=bgp networks other hosts have and this one has not, as this host's isolation now knows them. */
  Foreign: ForeignNetwork[];
}
export interface ForeignNetwork {
  Name: string;
  Subnet: string;
  /** The networks here allowed to exchange traffic with it: routed networks by name, bridges as "bridge NAME". */
  Allowed: string[];
}
