import { writeSync } from 'node:fs';
import { TETHER_VERSION } from '../../cnictl/cli.js';
import { keepHealthFile, parseObserveConfig, startPeerMetrics } from '../observe.js';
import { PeerAgent } from './agent.js';
import { parsePeerAgentConfig } from './config.js';
import { writeReclaimRequest } from './control.js';

/** tetherd with "store": "peers": run, leave, or ask the running agent to reclaim a dead node. */
export async function peersMain(command: string, raw: unknown, args: string[]): Promise<number> {
  const c = parsePeerAgentConfig(raw);
  const o = parseObserveConfig(raw);
  const out = (s: string) => { writeSync(1, `${s}\n`); };
  if (command === 'reclaim') {
    const node = args[0];
    if (!node) { writeSync(2, 'tetherd reclaim: name the node to reclaim: tetherd reclaim NODE --config FILE\n'); return 2; }
    writeReclaimRequest(c.stateFile, node);
    out(`tetherd: asked the agent to reclaim ${node}; "cnictl status" shows the vote and its result`);
    return 0;
  }
  const agent = new PeerAgent(c);
  if (command === 'leave') {
    const r = await agent.leave(10_000);
    if (r.problem) { writeSync(2, `tetherd leave: ${r.problem}\n`); return 1; }
    out(r.blocks === 0 ? `tetherd: node ${c.nodeName} left; it owned no block` : r.confirmed
      ? `tetherd: node ${c.nodeName} left; its ${r.blocks} blocks now belong to ${r.to}`
      : `tetherd: node ${c.nodeName} left, but ${r.to} has not confirmed taking its ${r.blocks} blocks within 10 s; it will when it hears this node's state (run leave again to resend)`);
    return 0;
  }
  const metrics = await startPeerMetrics(o, TETHER_VERSION, agent.events, () => agent.gauges());
  let health: { stop(): void } | undefined;
  const done = new Promise<number>((resolve) => {
    for (const sig of ['SIGTERM', 'SIGINT'] as const) process.once(sig, () => { agent.stop(); health?.stop(); void metrics.stop().then(() => resolve(0)); });
  });
  await agent.start();
  health = keepHealthFile(o, metrics, () => ({ ...agent.status() }));
  const s = agent.status();
  out(`tetherd: ready: node ${c.nodeName} peer mode on ${s.address}:${s.port}, ${s.owned} blocks owned${s.waiting ? ` (${s.waiting})` : ''}${metrics.address ? ` metrics http://${metrics.address}/metrics` : ''} health ${o.healthFile}`);
  return await done;
}
