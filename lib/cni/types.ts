// The CNI wire formats. Internally tether keeps one model, the 1.1.0 Result; other versions exist
// only at the edges (result.ts converts).

export interface Interface {
  name: string;
  mac?: string;
  mtu?: number;
  /** CNI_NETNS for interfaces inside the container; absent on the host. */
  sandbox?: string;
  socketPath?: string;
  pciID?: string;
}

export interface IPConfig {
  /** CIDR: the address with the prefix length of its subnet. */
  address: string;
  gateway?: string;
  /** Index into interfaces[]; 0 is valid, so never test it for truthiness. */
  interface?: number;
}

export interface RouteConfig {
  dst: string;
  gw?: string;
  mtu?: number;
  advmss?: number;
  priority?: number;
  table?: number;
  /** 0 (universe) is meaningful. */
  scope?: number;
}

export interface DNS {
  nameservers?: string[];
  domain?: string;
  search?: string[];
  options?: string[];
}

/** The 1.1.0 result: the internal model. */
export interface Result {
  cniVersion: string;
  interfaces?: Interface[];
  ips?: IPConfig[];
  routes?: RouteConfig[];
  dns?: DNS;
}

export interface VersionInfo {
  cniVersion: string;
  supportedVersions: string[];
}

export interface Attachment {
  containerID: string;
  ifname: string;
}

export interface IpamConf {
  type: string;
  [key: string]: unknown;
}

/** One plugin's configuration as it arrives on stdin. Unknown keys are the plugin's own. */
export interface NetConf {
  cniVersion: string;
  name: string;
  type: string;
  capabilities?: Record<string, boolean>;
  ipam?: IpamConf;
  dns?: DNS;
  args?: Record<string, unknown>;
  runtimeConfig?: Record<string, unknown>;
  prevResult?: unknown;
  [key: string]: unknown;
}

/** A network configuration list (.conflist). */
export interface NetConfList {
  cniVersion: string;
  cniVersions?: string[];
  name: string;
  disableCheck?: boolean;
  disableGC?: boolean;
  loadOnlyInlinedPlugins?: boolean;
  plugins: Record<string, unknown>[];
}
