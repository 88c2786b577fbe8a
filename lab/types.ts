// The lab as written to <dir>/lab.json: what `cnictl lab down` in another process needs to remove it.

export interface LabNode {
  name: string;
  /** Namespace name under /run/netns. */
  netns: string;
  underlayIP: string;
  underlayIP6: string;
  /** The node's files: agent config, state, logs, CNI data. */
  dir: string;
  /** The mode's agent (tetherd), when running. */
  agentPid?: number;
}

export interface LabPod {
  name: string;
  node: string;
  netns: string;
  containerID: string;
  ip: string;
}

export interface LabState {
  prefix: string;
  dir: string;
  mode: string;
  /** Mode settings (VNI, port, directRouting, ...) as given to `up`. */
  modeOptions: Record<string, unknown>;
  /** The tether binary (its links are the CNI path and the agent). */
  bin: string;
  underlay: { netns: string; bridge: string; prefix: number };
  etcd: { pid: number; endpoint: string; dir: string };
  pool: string;
  nodes: LabNode[];
  pods: LabPod[];
  /** Every namespace made, in creation order, for `down`. */
  namespaces: string[];
}
