import { writeSync } from 'node:fs';
import { CniError } from '../lib/cni/errors.js';
import { SUPPORTED_VERSIONS } from '../lib/cni/version.js';
import { parseArgv, str, UsageError, type Parsed } from '../lib/argv.js';
import { ConfigError } from '../lib/libcni/conf.js';
import { TETHER_VERSION } from '../lib/version.js';

const USAGE = `cnictl: attach network namespaces to CNI networks by hand, the way a container runtime does

Usage:
  cnictl attach <network> <netns> [--ifname eth0] [--container-id ID] [--args K=V;...] [--cap-args JSON]
  cnictl detach <network> <netns> [same options]
  cnictl check  <network> <netns> [same options]
  cnictl status <network>                           the network's STATUS (CNI 1.1)
  cnictl status [--agent-state FILE] [--docker-state DIR]  this node: networks, attachments, IPAM use, agent health, Docker endpoints
  cnictl gc     <network> [--valid ID/IFNAME,...]   without --valid every cached attachment is removed
  cnictl gc --docker [--docker-host unix://SOCK] [--driver-socket SOCK] [--grace SECONDS]
                                                    tether's Docker endpoints, veths, addresses that dockerd no longer has
  cnictl list   [network]                           attachments recorded in the result cache
  cnictl networks                                   configurations found in the config directory
  cnictl version <plugin>                           a plugin's VERSION answer
  cnictl ipam ls <network>                          tether-ipam's range sets and allocations
  cnictl ipam release <network> <container-id> [--ifname eth0]
  cnictl ipam gc <network> [--valid ID/IFNAME,...] [--grace SEC] [--forget-node NAME]
                                                    release this node's attachments whose namespace is gone
  cnictl netns add|del <name> | netns ls
  cnictl bgp peers|routes [--bgp-status FILE]       the BGP speaker's sessions / RIB (env TETHER_BGP_STATUS;
                                                    default /run/tether/bgp-status.json)
  cnictl peers reclaim <node> [--agent-config /etc/tether/tetherd.json]
                                                    peer mode: reclaim a node gone for good (a majority must agree)
  cnictl conformance <network> [--cni-path P] [--report FILE] [--skip-dataplane]
  cnictl install   [--bin-dir /opt/cni/bin] [--conf-dir /etc/cni/net.d] [--subnet CIDR] [--from FILE] [--force] [--dry-run]
                                                    the binary, its links and a default conflist (unless one exists)
                   [--docker [--systemd-dir /etc/systemd/system]]  also tetherd-docker.service, the Docker driver (docs/docker.md)
  cnictl uninstall [--bin-dir /opt/cni/bin] [--conf-dir /etc/cni/net.d] [--dry-run]
  cnictl lab up|status|down [--nodes N --mode vxlan]  a multi-node cluster in namespaces (cnictl lab --help)

Options (all commands):
  --conf-dir DIR    network configurations (env NETCONFPATH; default /etc/cni/net.d)
  --cni-path PATH   plugin directories, ':'-separated (env CNI_PATH; default /opt/cni/bin)
  --cache-dir DIR   result cache (default /var/lib/cni, shared with libcni runtimes)
  --timeout SEC     per plugin exec (default 60)
  --json            machine-readable output
  --version         print cnictl's version

<netns> is a name under /run/netns or a path such as /proc/PID/ns/net.
Exit status: 0 success, 1 a plugin or CNI error (code, message and details are printed), 2 usage, 3 configuration.`;

const VALUE_FLAGS = ['conf-dir', 'cni-path', 'cache-dir', 'timeout', 'ifname', 'container-id', 'args', 'cap-args', 'valid', 'report', 'only', 'grace', 'forget-node', 'bin-dir', 'from', 'subnet', 'agent-state', 'bgp-status', 'systemd-dir', 'docker-state', 'docker-host', 'driver-socket', 'agent-config'] as const;
const BOOL_FLAGS = ['json', 'help', 'h', 'version', 'skip-dataplane', 'verbose', 'dry-run', 'force', 'docker'] as const;

const err = (s: string) => { writeSync(2, s); };

export async function cnictlMain(argv: string[]): Promise<number> {
  // writeSync, not process.stdout: creating the stdout stream costs milliseconds per exec under Bun.
  const out = (s: string) => { writeSync(1, `${s}\n`); };
  if (argv[0] === 'lab') return (await import('./lab.js')).labMain(argv.slice(1));
  let p: Parsed;
  try {
    p = parseArgv(argv, VALUE_FLAGS, BOOL_FLAGS);
  } catch (e) {
    err(`cnictl: ${(e as Error).message}\n\n${USAGE}\n`);
    return 2;
  }
  const json = p.flags.has('json');
  if (p.flags.has('version')) {
    out(json ? JSON.stringify({ cnictl: TETHER_VERSION, cniVersions: SUPPORTED_VERSIONS }) : `cnictl ${TETHER_VERSION} (CNI ${SUPPORTED_VERSIONS.join(', ')})`);
    return 0;
  }
  if (p.flags.has('help') || p.flags.has('h') || !p.positional.length) {
    out(USAGE);
    return p.positional.length || p.flags.size ? 0 : 2;
  }
  const timeout = Number(str(p, 'timeout') ?? 60);
  if (!(timeout > 0)) {
    err('cnictl: --timeout must be a positive number of seconds\n');
    return 2;
  }
  try {
    const { run, makeRuntime } = await import('./commands.js');
    return await run({
      p, json, out,
      confDir: str(p, 'conf-dir') ?? process.env.NETCONFPATH ?? '/etc/cni/net.d',
      runtime: makeRuntime({
        path: (str(p, 'cni-path') ?? process.env.CNI_PATH ?? '/opt/cni/bin').split(':').filter(Boolean),
        cacheDir: str(p, 'cache-dir') ?? '/var/lib/cni',
        timeoutMs: timeout * 1000,
      }),
    });
  } catch (e) {
    if (e instanceof UsageError) {
      err(`cnictl: ${e.message}\n\n${USAGE}\n`);
      return 2;
    }
    if (e instanceof ConfigError) {
      if (json) out(JSON.stringify({ error: { msg: e.message } }));
      else err(`cnictl: configuration: ${e.message}\n`);
      return 3;
    }
    if (e instanceof CniError) {
      if (json) out(JSON.stringify({ error: e.toJSON() }));
      else err(`cnictl: error ${e.code}: ${e.message}${e.details ? `\n  details: ${e.details}` : ''}\n`);
      return 1;
    }
    err(`cnictl: ${(e as Error).message}\n`);
    return 1;
  }
}
