import type { LabNode, LabState } from './types.js';

// The lab's modes by name. Each mode's module registers itself when loaded (lab/index.ts loads tether's
// own; a bench registers its reference modes), so this registry names none of them.

/** What a mode adds to the plumbing: how a node joins the overlay and which CNI network its pods use. */
export interface ModeDriver {
  name: string;
  /** Names of the lab's namespaces start with this and 3 random bytes (default "tvx"). */
  namePrefix?: string;
  /** Before the first node starts (e.g. a route reflector of the mode's own); its processes go in modeOptions, stopped by teardown. */
  setup?(lab: LabState): Promise<void>;
  /** After every node is stopped, before the namespaces go. */
  teardown?(lab: LabState): Promise<void>;
  /** Starts the node's agent and returns once the node can take pods. */
  startNode(lab: LabState, node: LabNode): Promise<void>;
  /** Stops the agent and leaves the dataplane as it is (a restart). */
  stopNode(lab: LabState, node: LabNode): Promise<void>;
  /** Takes the node out of the cluster (its routes vanish from every other node). */
  leaveNode(lab: LabState, node: LabNode): Promise<void>;
  /** The node's pod network: a conflist object. */
  podNetwork(lab: LabState, node: LabNode): Record<string, unknown>;
  /** The node's pod subnet, for `status`. */
  subnetOf(lab: LabState, node: LabNode): string | undefined;
  /** Every node's agent has programmed every other node (agents start one by one and learn of each other asynchronously). */
  converged(lab: LabState): boolean;
  /** Where the pod network's plugins are besides tether's own (the reference plugins, for a bench's reference lab). */
  pluginDirs?: string[];
}

const drivers = new Map<string, () => Promise<ModeDriver>>();
export function registerMode(name: string, load: () => Promise<ModeDriver>): void { drivers.set(name, load); }
export const modes = () => [...drivers.keys()];

export async function driverFor(mode: string): Promise<ModeDriver> {
  const load = drivers.get(mode);
  if (!load) throw new Error(`unknown lab mode "${mode}" (known: ${modes().join(', ')})`);
  return load();
}
