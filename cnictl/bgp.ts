import { peerRows, readSnapshot, routeRows } from '../lib/bgp/status.js';
import { table } from './format.js';
import { DEFAULT_BGP_STATUS_FILE } from '../lib/paths.js';

/** `cnictl bgp peers|routes`: the speaker's sessions and RIB, from the status file its host writes. */
export function bgpShow(what: 'peers' | 'routes', o: { file?: string; json: boolean }): string {
  const snap = readSnapshot(o.file ?? process.env.TETHER_BGP_STATUS ?? DEFAULT_BGP_STATUS_FILE);
  if (o.json) return JSON.stringify(what === 'peers' ? snap.peers : snap.routes);
  const t = what === 'peers' ? peerRows(snap) : routeRows(snap);
  const title = `BGP speaker AS ${snap.asn}, router id ${snap.routerId} (pid ${snap.pid}, as of ${snap.time})`;
  return `${title}\n${table(t.head, t.rows)}`;
}
