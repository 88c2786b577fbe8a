import { readConfigFile } from '../tetherd/config.js';
import { parseObserveConfig } from '../tetherd/observe.js';
import { parsePeerAgentConfig } from '../tetherd/peers/config.js';
import { writeReclaimRequest } from '../tetherd/peers/control.js';
import { agentHealth } from './status.js';

export const DEFAULT_AGENT_CONFIG = '/etc/tether/tetherd.json';

/**
 * `cnictl peers reclaim NODE`: asks this node's running agent (peer mode) to reclaim a node gone for good,
 * and waits for the outcome its health file reports: reclaimed once a majority of the live members
 * agreed, or why not (the node was heard recently, another heir was voted...).
 */
export async function peersReclaim(node: string, o: { agentConfig: string; timeoutMs: number; out(s: string): void }): Promise<number> {
  const raw = readConfigFile(o.agentConfig);
  const c = parsePeerAgentConfig(raw);
  const health = parseObserveConfig(raw).healthFile;
  const h = agentHealth(health);
  if (h.state !== 'running') { o.out(`cnictl: the agent is ${h.state} (${h.reason}); start tetherd first`); return 1; }
  const asked = Date.now();
  writeReclaimRequest(c.stateFile, node);
  let last = '';
  for (const until = asked + o.timeoutMs; Date.now() < until; await new Promise((r) => setTimeout(r, 200))) {
    const r = agentHealth(health).details?.reclaim as { node: string; result: string; at: string } | undefined;
    if (!r || r.node !== node || Date.parse(r.at) < asked - 1000) continue;
    if (r.result !== last && r.result === 'voting') o.out(`${node}: voting (a majority of the live members must agree)`);
    last = r.result;
    if (r.result === 'reclaimed') { o.out(`${node}: reclaimed; its blocks now belong to ${c.nodeName}`); return 0; }
    if (r.result !== 'voting') { o.out(`${node}: not reclaimed: ${r.result}`); return 1; }
  }
  o.out(`${node}: ${last === 'voting' ? 'still voting' : 'no answer from the agent'} after ${o.timeoutMs / 1000} s; the vote goes on (see cnictl status)`);
  return 1;
}
