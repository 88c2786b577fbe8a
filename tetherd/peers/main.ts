import { writeSync } from 'node:fs';
import { TETHER_VERSION } from '../../lib/version.js';
import { keepHealthFile, parseObserveConfig, startPeerMetrics } from '../observe.js';
import { PeerAgent } from './agent.js';
import { parsePeerAgentConfig, type PeerAgentConfig } from './config.js';
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
    const what = r.blocks === 0 ? 'it owned no block' : `its ${r.blocks} blocks now belong to ${r.to}`;
    out(r.confirmed ? `tetherd: node ${c.nodeName} left; ${what}`
      : `tetherd: node ${c.nodeName} left (${what}), but not every live member confirmed it within 10 s; they will when they hear this node's state (run leave again to resend)`);
    return 0;
  }
  if ((raw as { mode?: string }).mode === 'bgp') return bgpOnPeers(raw, agent);
  if (c.vxlan) return vxlanOnPeers(c, raw, agent);
  const metrics = await startPeerMetrics(o, TETHER_VERSION, agent.events, () => agent.gauges());
  let health: { stop(): void; write(): void } | undefined;
  const done = new Promise<number>((resolve) => {
    for (const sig of ['SIGTERM', 'SIGINT'] as const) process.once(sig, () => { agent.stop(); health?.stop(); void metrics.stop().then(() => resolve(0)); });
  });
  // A change of the table or the members is in the health file at once (cnictl status right after a leave shows it).
  agent.onChange(() => health?.write());
  await agent.start();
  health = keepHealthFile(o, metrics, () => ({ ...agent.status() }));
  const s = agent.status();
  out(`tetherd: ready: node ${c.nodeName} peer mode on ${s.address}:${s.port}, ${s.owned} blocks owned${s.waiting ? ` (${s.waiting})` : ''}${metrics.address ? ` metrics http://${metrics.address}/metrics` : ''} health ${o.healthFile}`);
  return await done;
}

/**
 * BGP mode on peers: the address-space agent, and the BGP speaker fed from it (members are the mesh,
 * the table says which blocks each node announces). One health file holds both.
 */
async function bgpOnPeers(raw: unknown, agent: PeerAgent): Promise<number> {
  const { BgpAgent } = await import('../bgp.js');
  const { parseBgpAgentConfig } = await import('../bgp-config.js');
  const { bgpHealth, startBgpMetrics } = await import('../observe.js');
  const c = parseBgpAgentConfig(raw);
  const o = parseObserveConfig(raw);
  const bgp = new BgpAgent(c, { nodes: () => agent.liveMembers(c.asn), blocks: () => agent.ownedBlocks(), onChange: (fn) => agent.onChange(fn) });
  agent.events.on((e) => bgp.events.emit(e));
  const view = () => bgp.view();
  const metrics = await startBgpMetrics(o, TETHER_VERSION, view, bgp.events);
  let health: { stop(): void; write(): void } | undefined;
  const done = new Promise<number>((resolve) => {
    for (const sig of ['SIGTERM', 'SIGINT'] as const) {
      process.once(sig, () => { bgp.stop(); agent.stop(); health?.stop(); void metrics.stop().then(() => setTimeout(() => resolve(0), 200)); });
    }
  });
  agent.onChange(() => health?.write());
  await agent.start();
  await bgp.start();
  health = keepHealthFile(o, metrics, () => ({ ...agent.status(), bgp: bgpHealth(view)() }));
  writeSync(1, `tetherd: ready: node ${c.nodeName} in BGP mode on peers, AS ${c.asn}, ${agent.status().owned} blocks owned${metrics.address ? ` metrics http://${metrics.address}/metrics` : ''} health ${o.healthFile}\n`);
  return done;
}

/**
 * VXLAN mode on peers: the address-space agent, and the VXLAN device programmed from its table (each
 * block routed to its owner's VTEP). One health file holds both.
 */
async function vxlanOnPeers(c: PeerAgentConfig, raw: unknown, agent: PeerAgent): Promise<number> {
  const { PeerVxlan } = await import('./vxlan.js');
  const o = parseObserveConfig(raw);
  const vx = new PeerVxlan({ ...c.vxlan!, nodeName: c.nodeName, pool: c.pool }, agent, agent.logger, agent.events);
  const metrics = await startPeerMetrics(o, TETHER_VERSION, agent.events, () => agent.gauges());
  let health: { stop(): void; write(): void } | undefined;
  const done = new Promise<number>((resolve) => {
    for (const sig of ['SIGTERM', 'SIGINT'] as const) process.once(sig, () => { vx.stop(); agent.stop(); health?.stop(); void metrics.stop().then(() => resolve(0)); });
  });
  agent.onChange(() => { vx.program('the table or the members changed'); health?.write(); });
  await agent.start();
  vx.start(agent.status().address);
  health = keepHealthFile(o, metrics, () => ({ ...agent.status(), vxlan: vx.view() }));
  const s = agent.status();
  writeSync(1, `tetherd: ready: node ${c.nodeName} in VXLAN mode on peers (${vx.view().device}, VNI ${c.vxlan!.vni}), ${s.owned} blocks owned${metrics.address ? ` metrics http://${metrics.address}/metrics` : ''} health ${o.healthFile}\n`);
  return done;
}
