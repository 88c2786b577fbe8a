import { writeSync } from 'node:fs';
import { parseArgv, str, UsageError } from '../lib/argv.js';
import { TETHER_VERSION } from '../lib/version.js';
import { AgentConfigError, configMode, parseAgentConfig, readConfigFile } from './config.js';
import { Agent, leave } from './agent.js';
import { isPeerStore } from './peers/config.js';
import { keepHealthFile, parseObserveConfig, startAgentMetrics, vxlanHealth } from './observe.js';

const USAGE = `tetherd: the tether node agent (VXLAN overlay, Flannel style; or BGP, Calico style, with "mode": "bgp")

Usage:
  tetherd [run] --config FILE   register the node, take its subnet, program the overlay; runs until SIGTERM
  tetherd ports-proxy [--interval-ms 1000] [--log-file FILE]
                                only the proxy that serves published ports on [::1] (run also does it,
                                unless its config says "portsProxy": false), for a node with no agent
  tetherd docker-plugin [--socket PATH] [--state-dir DIR] [--config FILE]
                                serve Docker as its network and IPAM driver "tether" (docs/docker.md)
  tetherd leave --config FILE   take the node out of the cluster: its subnet key and lease are removed,
                                so every other node removes its routes, neighbour and FDB entries
                                (peer mode: its blocks are handed to another member)
  tetherd reclaim NODE --config FILE
                                peer mode ("store": "peers"): ask the running agent to reclaim a node
                                gone for good; a majority of the live members must agree

SIGTERM and SIGINT stop the agent and leave the device, routes and lease in place (a restart picks up
the same subnet). Metrics: http://127.0.0.1:9310/metrics unless "observe" says otherwise; health:
/run/tether/tetherd.json (read by cnictl status). The configuration is described in docs/tetherd.md.`;

export async function tetherdMain(argv: string[]): Promise<number> {
  const err = (s: string) => { writeSync(2, s); };
  let config: string | undefined;
  let command = 'run';
  if (argv[0] === 'docker-plugin') return (await import('./docker-plugin.js')).dockerPluginMain(argv.slice(1));
  if (argv[0] === 'ports-proxy') return (await import('./ports-main.js')).portsProxyMain(argv.slice(1));
  let args: string[] = [];
  try {
    const p = parseArgv(argv, ['config'], ['help']);
    if (p.flags.has('help')) { writeSync(1, `${USAGE}\n`); return 0; }
    command = p.positional[0] ?? 'run';
    if (!['run', 'leave', 'reclaim'].includes(command) || p.positional.length > (command === 'reclaim' ? 2 : 1)) throw new UsageError(`unknown command ${p.positional.join(' ')}`);
    args = p.positional.slice(1);
    config = str(p, 'config');
    if (!config) throw new UsageError('--config FILE is required');
  } catch (e) {
    err(`tetherd: ${(e as Error).message}\n\n${USAGE}\n`);
    return 2;
  }
  try {
    // One read of the file: the mode, the agent's section and the observe section all come from it.
    const raw = readConfigFile(config);
    // Published ports on [::1] need a userspace proxy, and the agent is the node's long-lived process.
    if (command === 'run') {
      const proxy = (await import('./ports-main.js')).startPortsProxy(raw);
      try { return await runMode(command, raw, args); } finally { proxy.stop(); }
    }
    return await runMode(command, raw, args);
  } catch (e) {
    err(`tetherd: ${e instanceof AgentConfigError ? '' : 'error: '}${(e as Error).message}\n`);
    return e instanceof AgentConfigError ? 3 : 1;
  }
}

async function runMode(command: string, raw: unknown, args: string[]): Promise<number> {
  if (isPeerStore(raw)) return await (await import('./peers/main.js')).peersMain(command, raw, args);
  if (command === 'reclaim') throw new UsageError('reclaim is for peer mode ("store": "peers"); in etcd modes a dead node\'s lease expires by itself');
  if (configMode(raw) === 'bgp') return await (await import('./bgp.js')).bgpMain(command, raw);
  const c = parseAgentConfig(raw);
  const o = parseObserveConfig(raw);
  if (command === 'leave') {
    const subnet = await leave(c);
    writeSync(1, subnet ? `tetherd: node ${c.nodeName} left; released ${subnet}\n` : `tetherd: node ${c.nodeName} holds no subnet\n`);
    return 0;
  }
  const agent = new Agent(c);
  const metrics = await startAgentMetrics(c, o, TETHER_VERSION, agent.events);
  let health: { stop(): void } | undefined;
  const done = new Promise<number>((resolve) => {
    for (const sig of ['SIGTERM', 'SIGINT'] as const) process.once(sig, () => { agent.stop(); health?.stop(); void metrics.stop().then(() => resolve(0)); });
  });
  await agent.start();
  health = keepHealthFile(o, metrics, vxlanHealth(agent));
  writeSync(1, `tetherd: ready: node ${c.nodeName} subnet ${agent.state.subnet} mtu ${agent.state.mtu}${metrics.address ? ` metrics http://${metrics.address}/metrics` : ''} health ${o.healthFile}\n`);
  return await done;
}
