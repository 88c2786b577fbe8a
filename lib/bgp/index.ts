// What tetherd needs to host the speaker: the Speaker, its peers from the store's node list, the
// kernel sink, and the status snapshot cnictl reads.
export { Speaker, type AnnounceOptions, type RibSnapshot, type RouteEntry, type SessionTransition, type SpeakerConfig } from './speaker.js';
export type { PeerConfig, PeerStatus } from './session.js';
export { peersFor, DEFAULT_ASN, type NodeInfo, type TopologyOptions } from './topology.js';
export { KernelRoutes, type RouteSink } from './kernel.js';
export { snapshot, writeSnapshot, readSnapshot, statusWriter, type SpeakerSnapshot } from './status.js';
