import { writeSync } from 'node:fs';
import { hostname } from 'node:os';
import { parseArgv, str, UsageError } from '../lib/argv.js';
import type { CIDR } from '../lib/ip/addr.js';
import { createLogger } from '../lib/log.js';
import { Netlink } from '../lib/netlink/handle.js';
import { DockerConfigError, readDockerConfig, type DockerPluginConfig } from '../docker/config.js';
import { kernelDataplane } from '../docker/dataplane.js';
import { IpamDriver } from '../docker/ipam.js';
import { NetworkDriver, type MultiHost } from '../docker/network.js';
import { overlayFrom } from '../docker/overlay.js';
import { refreshHostsPeriodically } from '../docker/refresh.js';
import { SharedNetworks } from '../docker/shared.js';
import { DEFAULT_NODE_STATE_FILE } from '../lib/paths.js';
import { PluginServer } from '../docker/server.js';
import { DEFAULT_SOCKET, DEFAULT_STATE_DIR, DriverState } from '../docker/state.js';

export const DOCKER_USAGE = `tetherd docker-plugin: tether as a Docker network and IPAM driver (libnetwork remote driver)

Usage:
  tetherd docker-plugin [--socket PATH] [--state-dir DIR] [--config FILE]

  --socket PATH     where dockerd finds it (default ${DEFAULT_SOCKET}: the plugin's name is "tether")
  --state-dir DIR   networks, endpoints and address pools it keeps (default ${DEFAULT_STATE_DIR})
  --config FILE     JSON {"logFile", "logLevel", "nodeName", "etcd", "vxlanStateFile", "bgp"}; "etcd" (tetherd's)
                    makes -o mode=vxlan available (one network across the hosts of tetherd's VXLAN overlay),
                    and with "bgp": {"ipamNetwork"} -o mode=bgp (routed containers that tetherd announces)

Then: docker network create -d tether --ipam-driver tether --subnet 10.30.0.0/24 NAME
  or, on every host: docker network create -d tether --ipam-driver tether -o mode=vxlan|bgp --subnet POOL NAME
Run it in dockerd's network namespace, started before dockerd and stopped after. SIGTERM stops it;
the networks and containers stay as they are, and a restart picks them up. See docs/docker.md.`;

/** The host's own subnets (its routes), kept out of the pools picked without --subnet. */
function hostSubnets(): CIDR[] {
  return Netlink.within('/proc/self/ns/net', (nl) => nl.routes(4).flatMap((r) => (r.dst && r.dst.prefix > 0 ? [r.dst] : [])));
}

export async function dockerPluginMain(argv: string[]): Promise<number> {
  let socket = DEFAULT_SOCKET;
  let stateDir = DEFAULT_STATE_DIR;
  let config: DockerPluginConfig = {};
  try {
    const p = parseArgv(argv, ['socket', 'state-dir', 'config'], ['help']);
    if (p.flags.has('help')) { writeSync(1, `${DOCKER_USAGE}\n`); return 0; }
    if (p.positional.length) throw new UsageError(`unexpected argument ${p.positional[0]}`);
    socket = str(p, 'socket') ?? socket;
    stateDir = str(p, 'state-dir') ?? stateDir;
    const file = str(p, 'config');
    if (file) config = readDockerConfig(file);
  } catch (e) {
    writeSync(2, `tetherd docker-plugin: ${(e as Error).message}\n\n${DOCKER_USAGE}\n`);
    return e instanceof DockerConfigError ? 3 : 2;
  }
  const log = createLogger({ component: 'tetherd docker-plugin', file: config.logFile, level: config.logLevel });
  try {
    const state = new DriverState(stateDir);
    const overlay = overlayFrom(config.vxlanStateFile ?? DEFAULT_NODE_STATE_FILE);
    const routed = config.bgp ? { network: config.bgp.ipamNetwork, node: config.nodeName ?? hostname() } : undefined;
    const multi: MultiHost | undefined = config.etcd ? { overlay, shared: SharedNetworks.onEtcd(config.etcd, stateDir), ...(routed ? { routed } : {}) } : undefined;
    const net = new NetworkDriver(state, kernelDataplane, multi, log);
    const ipam = new IpamDriver(state, { stateDir, nodeName: config.nodeName, hostSubnets, ...(config.etcd ? { etcd: config.etcd, overlay } : {}) });
    await net.restore();
    const server = new PluginServer(net, ipam, log);
    await server.listen(socket);
    const stopRefresh = routed ? refreshHostsPeriodically(net, server, log) : () => undefined;
    writeSync(1, `tetherd docker-plugin: ready on ${socket}, state ${stateDir}\n`);
    return await new Promise<number>((resolve) => {
      for (const sig of ['SIGTERM', 'SIGINT'] as const) process.once(sig, () => { stopRefresh(); void server.close(socket).then(() => resolve(0)); });
    });
  } catch (e) {
    writeSync(2, `tetherd docker-plugin: error: ${(e as Error).message}\n`);
    return 1;
  }
}
