import { NETLINK_NETFILTER } from '../../lib/netlink/constants.js';
import { NFPROTO_INET, nftGetTable } from '../../lib/netlink/nftables.js';
import { nftApplySetChanges, nftGetElement, type SetChange } from '../../lib/netlink/nft-set.js';
import { NetlinkError, NetlinkSocket } from '../../lib/netlink/socket.js';
import { runNftScript } from '../../lib/nft-script.js';

// Isolation between tether-bridge networks, node-wide: one table whose forward rules never change;
// each network's bridge and its settings are set elements. Routed traffic between two tether bridges
// is refused (ICMP administratively prohibited, so a sender learns at once) unless it was DNATed to a
// published port (those answer from anywhere), or unless one of the networks allows the other's bridge; an internal network's bridge
// exchanges nothing with any other interface; with icc off, nothing is routed from a bridge back to
// itself (bridged traffic between its ports is stopped by port isolation).

export const ISOLATION_TABLE = 'tether_isolation';
const COMMENT = 'tether network isolation, rules v1';

export interface IsolationSettings {
  bridge: string;
  /** false: this bridge takes no part (the network opted out with "isolation": "none"). */
  isolate: boolean;
  internal: boolean;
  icc: boolean;
  /** Bridges of other networks this one exchanges traffic with, both ways. */
  allowBridges: string[];
}

function script(): string {
  const t = ISOLATION_TABLE;
  return `create table inet ${t} { comment "${COMMENT}"; }
table inet ${t} {
  set bridges { type ifname; }
  set internal { type ifname; }
  set self { type ifname . ifname; }
  set peers { type ifname . ifname; }
  set noicc { type ifname . ifname; }
  chain forward {
    type filter hook forward priority filter - 10; policy accept;
    iifname . oifname @noicc counter reject with icmpx admin-prohibited
    iifname @internal iifname . oifname != @self counter reject with icmpx admin-prohibited
    oifname @internal iifname . oifname != @self counter reject with icmpx admin-prohibited
    iifname @bridges oifname @bridges iifname . oifname != @self iifname . oifname != @peers ct status & dnat == 0 counter reject with icmpx admin-prohibited
  }
}
`;
}

function ensureTable(): void {
  if (nftGetTable(NFPROTO_INET, ISOLATION_TABLE)) return;
  try { runNftScript(script(), 'isolation', ISOLATION_TABLE); } catch (e) {
    if (!nftGetTable(NFPROTO_INET, ISOLATION_TABLE)) throw e; // else another ADD made it first
  }
}

/** An ifname key: the name NUL-padded to IFNAMSIZ, as nftables stores it. */
function ifname(name: string): Buffer {
  const b = Buffer.alloc(16);
  b.write(name, 'utf8');
  return b;
}
const pair = (a: string, b: string) => Buffer.concat([ifname(a), ifname(b)]);

const change = (op: 'add' | 'delete', set: string, keys: Buffer[]): SetChange => ({ op, family: NFPROTO_INET, table: ISOLATION_TABLE, set, elements: keys.map((key) => ({ key })) });

/** Brings the bridge's elements in line with the network's settings (a few element changes, no rules). */
export function ensureIsolation(s: IsolationSettings): void {
  if (!s.isolate && !s.internal && s.icc) {
    if (!nftGetTable(NFPROTO_INET, ISOLATION_TABLE)) return; // nothing to take part in, nothing to leave
  } else ensureTable();
  NetlinkSocket.within(NETLINK_NETFILTER, (sock) => {
    const want: SetChange[] = [];
    const drop: SetChange[] = [];
    (s.isolate ? want : drop).push(change('add', 'bridges', [ifname(s.bridge)]));
    want.push(change('add', 'self', [pair(s.bridge, s.bridge)]));
    if (s.allowBridges.length) want.push(change('add', 'peers', s.allowBridges.flatMap((o) => [pair(s.bridge, o), pair(o, s.bridge)])));
    (s.internal ? want : drop).push(change('add', 'internal', [ifname(s.bridge)]));
    (s.icc ? drop : want).push(change('add', 'noicc', [pair(s.bridge, s.bridge)]));
    nftApplySetChanges(sock, want);
    // Settings turned off since an earlier ADD. Looked up first: deleting an absent element aborts the
    // transaction, and an abort costs the kernel a grace period (~10 ms), a lookup almost nothing.
    const present = drop.filter((d) => nftGetElement(sock, NFPROTO_INET, ISOLATION_TABLE, d.set, d.elements[0].key) !== null);
    if (present.length) nftApplySetChanges(sock, present.map((d) => ({ ...d, op: 'delete' as const })));
  });
}

/**
 * Takes a bridge out of isolation when its network is gone (Docker's network rm; CNI never removes a
 * network): its elements go, one by one, since deleting an absent element fails the batch.
 */
export function removeIsolation(bridge: string): void {
  if (!nftGetTable(NFPROTO_INET, ISOLATION_TABLE)) return;
  NetlinkSocket.within(NETLINK_NETFILTER, (sock) => {
    for (const d of [change('delete', 'bridges', [ifname(bridge)]), change('delete', 'self', [pair(bridge, bridge)]), change('delete', 'internal', [ifname(bridge)]), change('delete', 'noicc', [pair(bridge, bridge)])]) {
      try { nftApplySetChanges(sock, [d]); } catch (e) {
        if (!(e instanceof NetlinkError && e.code === 'ENOENT')) throw e;
      }
    }
  });
}
