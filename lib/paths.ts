// The files through which tether's programs talk to one another on a node. Each has one writer and
// readers in other programs, so the defaults live here, not in either side.

/** tetherd's VXLAN node state (subnet, MTU, VTEP): written by tetherd, read by tether-vxlan at each ADD and by cnictl. */
export const DEFAULT_NODE_STATE_FILE = '/run/tether/vxlan.json';
/** tetherd's health file (pid, time, sessions...): written by tetherd, read by `cnictl status`. */
export const DEFAULT_AGENT_STATE_FILE = '/run/tether/tetherd.json';
/** The BGP speaker's snapshot: written by tetherd or `tether bgp-speaker`, read by `cnictl bgp`. */
export const DEFAULT_BGP_STATUS_FILE = '/run/tether/bgp-status.json';
/** An agent that has not rewritten its health file for this long is reported stale even if its PID lives. */
export const AGENT_STALE_MS = 60_000;
