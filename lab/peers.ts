import { chmodSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { LabNode, LabState } from './types.js';

/**
 * "store": "peers" in the lab, for any mode: no etcd; the agents agree on the pool among themselves
 * (docs/peers.md) over the gossip port, with a key the lab writes, and tether-ipam allocates from the
 * blocks each node's agent writes into its embedded store.
 */
export const onPeers = (lab: LabState) => lab.modeOptions.store === 'peers';
const peerKey = (lab: LabState) => join(lab.dir, 'peers.key');

/** Before the first node starts: the network's shared key. */
export function writePeerKey(lab: LabState): void {
  writeFileSync(peerKey(lab), `${Buffer.from(crypto.getRandomValues(new Uint8Array(32))).toString('hex')}\n`, { mode: 0o600 });
  chmodSync(peerKey(lab), 0o600);
}

/**
 * The peer-mode part of a node's agent config: every other lab node's address (or, with the mode option
 * joinThrough naming a node, only that one's: a node joining through one member), the lab's key, the
 * pod network's store.
 */
export function peerStoreConfig(lab: LabState, node: LabNode, ipam: { network: string; dataDir: string }): Record<string, unknown> {
  const through = lab.nodes.find((n) => n.name === lab.modeOptions.joinThrough && n !== node);
  return {
    store: 'peers', pool: lab.pool, blockSize: lab.modeOptions.blockSize ?? 26,
    peers: { addresses: through ? [through.underlayIP] : lab.nodes.filter((n) => n !== node).map((n) => n.underlayIP), keyFile: peerKey(lab), stateFile: join(node.dir, 'peers.json'), voteSilence: 10, gossipIntervalMs: 250 },
    ipam,
  };
}

/** tether-ipam's section on peers: only the blocks the agent gives this node. */
export const peerIpam = (lab: LabState) => ({ agentBlocks: true, blockSize: lab.modeOptions.blockSize ?? 26 });

/** What a peer-mode agent's health file says (the fields the lab reads). */
export interface PeerHealth {
  pid: number;
  owned: number;
  waiting?: string;
  peers: { name: string; address: string; state: string; blocks: number; lastContactMs: number | null }[];
  table: { blocks: string; owner: string; version: number }[];
  vxlan?: { routes: number; device: string; mac: string };
}

export function peerHealth(file: string): PeerHealth | undefined {
  try { return JSON.parse(readFileSync(file, 'utf8')) as PeerHealth; } catch { return undefined; }
}
