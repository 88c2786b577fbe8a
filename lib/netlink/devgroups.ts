// Device groups (IFLA_GROUP) tether gives links, one range per purpose so they never meet:
// - 0 .. 0x7fffffff: the operator's (0 is every device's default); tether never sets these.
// - 0x80000000 | ifindex: a short-lived group that names the links one DEL removes together.
// - 0xc0000000 | 30-bit hash: a network, for the isolation rules (plugins/common/isolation.ts).

const DELETION = 0x80000000;
const NETWORK = 0xc0000000;
const LOW30 = 0x3fffffff;

/**
 * The group that gathers the links deleted with the link `ifindex`. Deleting a group is one kernel
 * batch, which pays the unregister grace periods (~20 ms) once for all its links instead of once per
 * link. An ifindex is unique among a namespace's live links, so two DELs never share one.
 */
export const deletionGroup = (ifindex: number): number => (DELETION | (ifindex & LOW30)) >>> 0;

/** A network's isolation group from a 32-bit hash of its identity. */
export const networkGroup = (hash: number): number => (NETWORK | (hash & LOW30)) >>> 0;
