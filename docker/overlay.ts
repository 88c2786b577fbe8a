import { readNodeState } from '../lib/node-state.js';
import { DriverError } from './errors.js';

/**
 * What tetherd in VXLAN mode tells this host (its node state file, the one tether-vxlan reads): the
 * overlay's pool, shared by every host, and this host's own subnet of it, leased in etcd so no two hosts
 * ever hold the same one. A -o mode=vxlan network is that pool; its containers on this host get
 * addresses of this host's subnet, and tetherd routes the other hosts' subnets over VXLAN.
 */
export interface Overlay {
  /** tetherd's "network": the name the hosts share the overlay under. */
  network: string;
  pool: string;
  subnet: string;
  mtu: number;
  /** tetherd's node name. */
  node: string;
}

export const overlayFrom = (stateFile: string) => (): Overlay => {
  const s = readNodeState(stateFile);
  if (!s) {
    throw new DriverError(`tether: -o mode=vxlan needs tetherd running in VXLAN mode on this host: it has not published ${stateFile} `
      + '(start tetherd, or set "vxlanStateFile" in the docker-plugin config to its "stateFile")');
  }
  return { network: s.network, pool: s.pool, subnet: s.subnet, mtu: s.mtu, node: s.node };
};
