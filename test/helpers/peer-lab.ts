import { chmodSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Allocator } from '../../ipam/allocator.js';
import { parseIpamConfig } from '../../ipam/config.js';
import { openStore } from '../../ipam/store.js';
import { plugIntoUnderlay, type LabState } from '../../lab/index.js';
import { alive, spawnDaemon, stopPid } from '../../lab/procs.js';
import { Netlink } from '../../lib/netlink/handle.js';
import { netnsPath } from '../../lib/netns/netns.js';
import type { PeerStatusView } from '../../tetherd/peers/agent.js';
import { Namespaces } from './netns.js';
import { waitFor } from './wait.js';

export { waitFor };

/**
 * Nodes in namespaces on one underlay bridge, each with the compiled tetherd in peer mode (no etcd),
 * and tether-ipam's allocator on each node's embedded store (the code the plugin runs). The underlay
 * namespace holds a second bridge: moving nodes' ports there cuts the network in two.
 */
export const DIST = fileURLToPath(new URL('../../../dist/bin/', import.meta.url));
export const POOL = '10.244.0.0/20';

export interface PeerLabNode { name: string; index: number; path: string; ip: string; dir: string; pid?: number; config: string; health: string; log: string }

export class PeerLab {
  readonly ns = new Namespaces('tpr');
  readonly dir = mkdtempSync(join(tmpdir(), 'tether-peers-'));
  readonly key = join(this.dir, 'peers.key');
  readonly nodes: PeerLabNode[] = [];
  private readonly ul: string;

  constructor(readonly options: Record<string, unknown> = {}) {
    writeFileSync(this.key, 'lab-secret-0123456789abcdef0123456789\n');
    chmodSync(this.key, 0o600);
    this.ul = this.ns.add('ul');
    Netlink.within(this.ul, (nl) => {
      nl.linkSet(nl.linkByName('lo')!.index, { up: true });
      for (const b of ['br0', 'br1']) nl.linkAdd({ kind: 'bridge', name: b, up: true, bridge: { stpState: 0, forwardDelay: 0 } });
    });
  }

  /** A node namespace on the underlay (not started). */
  addNode(): PeerLabNode {
    const index = this.nodes.length + 1;
    const name = `n${index}`;
    const path = this.ns.add(name);
    Netlink.within(path, (nl) => nl.linkSet(nl.linkByName('lo')!.index, { up: true }));
    const lab = { underlay: { netns: `${this.ns.prefix}-ul`, bridge: 'br0', prefix: 24 } } as LabState;
    const ip = `198.18.0.${10 + index}`;
    plugIntoUnderlay(lab, path, `p${index}`, ip, `2001:db8:18::${(10 + index).toString(16)}`);
    const dir = join(this.dir, name);
    mkdirSync(dir, { recursive: true });
    const n = { name, index, path, ip, dir, config: join(dir, 'tetherd.json'), health: join(dir, 'health.json'), log: join(dir, 'tetherd.log') };
    this.nodes.push(n);
    return n;
  }

  config(n: PeerLabNode, peers: string[], extra: Record<string, unknown> = {}): Record<string, unknown> {
    return {
      store: 'peers', network: 'lab', nodeName: n.name, pool: POOL, blockSize: 26, underlayIP: n.ip, logLevel: 'debug',
      peers: { addresses: peers, keyFile: this.key, stateFile: join(n.dir, 'peers.json'), voteSilence: 3, gossipIntervalMs: 250, ...(this.options.peers as object ?? {}), ...(extra.peers as object ?? {}) },
      ipam: { network: 'lab', dataDir: join(n.dir, 'ipam') },
      observe: { healthFile: n.health, metricsAddress: '127.0.0.1:9310', healthIntervalMs: 200 },
      ...Object.fromEntries(Object.entries(extra).filter(([k]) => k !== 'peers')),
    };
  }

  /** Starts the node's tetherd on `peers` (addresses), waiting until it runs (its health file exists). */
  async start(n: PeerLabNode, peers: string[], extra: Record<string, unknown> = {}): Promise<void> {
    writeFileSync(n.config, `${JSON.stringify(this.config(n, peers, extra), null, 2)}\n`);
    rmSync(n.health, { force: true });
    n.pid = spawnDaemon(n.path, join(DIST, 'tetherd'), ['--config', n.config], n.log);
    await waitFor(`tetherd on ${n.name} running`, () => { if (!alive(n.pid!)) throw new Error(`tetherd on ${n.name} died: ${this.logTail(n)}`); return this.status(n) !== undefined; }, { ms: 30_000, every: 25 });
  }

  async stop(n: PeerLabNode, signal: 'SIGTERM' | 'SIGKILL' = 'SIGTERM'): Promise<void> {
    if (!n.pid) return;
    if (signal === 'SIGKILL') { try { process.kill(n.pid, 'SIGKILL'); } catch { /* gone */ } await waitFor(`${n.name} killed`, () => !alive(n.pid!), { ms: 10_000, every: 20 }); }
    else await stopPid(n.pid, 'tetherd');
    n.pid = undefined;
  }

  logTail(n: PeerLabNode): string {
    try { return readFileSync(n.log, 'utf8').trim().split('\n').slice(-8).join('\n  '); } catch { return '(no log)'; }
  }

  status(n: PeerLabNode): (PeerStatusView & { pid: number }) | undefined {
    try { return JSON.parse(readFileSync(n.health, 'utf8')); } catch { return undefined; }
  }

  allocator(n: PeerLabNode): Allocator {
    const cfg = parseIpamConfig({ cniVersion: '1.0.0', name: 'lab', ipam: { type: 'tether-ipam', ranges: [[{ subnet: POOL }]], blockSize: 26, dataDir: join(n.dir, 'ipam'), nodeName: n.name, agentBlocks: true } } as never);
    return new Allocator(openStore(cfg), cfg);
  }

  /** Moves nodes' underlay ports to the second bridge (cut off from the first) or back. */
  side(nodes: PeerLabNode[], bridge: 'br0' | 'br1'): void {
    Netlink.within(this.ul, (nl) => {
      const br = nl.linkByName(bridge)!;
      for (const n of nodes) nl.linkSet(nl.linkByName(`p${n.index}`)!.index, { master: br.index });
    });
  }

  async cleanup(): Promise<string[]> {
    for (const n of this.nodes) await this.stop(n);
    this.ns.cleanup();
    rmSync(this.dir, { recursive: true, force: true });
    return this.ns.leftovers();
  }
}

export const netnsOf = (n: PeerLabNode) => netnsPath(n.path);
