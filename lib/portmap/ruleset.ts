import { NFPROTO_INET, nftGetTable } from '../netlink/nftables.js';
import { runNftScript } from '../nft-script.js';

// One table for every port mapping of the node, whatever network or plugin made it. Its rules are
// written once and never change; a mapping is an element of one of its maps (the rules look them up),
// so adding the 500th mapped pod costs what adding the first did.

export const PORTS_TABLE = 'tether_ports';
/** Bumped whenever the rules change, so a node with an older table is noticed rather than half-served. */
export const PORTS_COMMENT = 'tether port mappings, rules v2';

/** Maps keyed on (protocol, port) for mappings on every host address; on (address, protocol, port) for a hostIP. */
export const SETS = {
  wild4: 'wild4', wild6: 'wild6', host4: 'host4', host6: 'host6',
  /** Source prefixes whose DNATed traffic is masqueraded: subnets of mapped pods (hairpin, pod to pod on one bridge). */
  masq4: 'masq4', masq6: 'masq6',
  /**
   * UDP host ports given up in the last 180 s (longer than conntrack keeps a UDP stream, 120 s): an ADD
   * that publishes one of them flushes its conntrack entries, which still lead to the old container.
   * Looking this up is a hash probe; a conntrack dump walks the kernel's whole table (10 ms and more).
   */
  udpReleased: 'udp_released',
  /** Host ports (original destination) of DNATed UDP flows seen in the last 180 s, kept by the datapath: a released port with none needs no conntrack walk. */
  udpActive: 'udp_active',
  /** One element per attachment that published ports: what it holds (lib/portmap/ledger.ts). */
  owners: 'owners',
  /**
   * protocol . port claimed on every address ("wild <owner>") or on some address ("host"), per family:
   * a mapping on every address and one on a hostIP of the same port cannot coexist (Docker refuses it
   * too), and the exclusive add of a claim makes that one hash probe inside the ADD's transaction.
   */
  claims4: 'claims4', claims6: 'claims6',
} as const;

export function portsScript(): string {
  const t = PORTS_TABLE;
  // "create" fails when the table exists, which aborts the whole file: two first ADDs racing each
  // other cannot both write the rules.
  return `create table inet ${t} { comment "${PORTS_COMMENT}"; }
table inet ${t} {
  map host4 { type ipv4_addr . inet_proto . inet_service : ipv4_addr . inet_service; }
  map host6 { type ipv6_addr . inet_proto . inet_service : ipv6_addr . inet_service; }
  map wild4 { type inet_proto . inet_service : ipv4_addr . inet_service; }
  map wild6 { type inet_proto . inet_service : ipv6_addr . inet_service; }
  set udp_released { type inet_service; flags timeout; timeout 180s; }
  set udp_active { type inet_service; flags dynamic, timeout; timeout 180s; }
  set owners { type ipv6_addr; }
  set claims4 { type inet_proto . inet_service; }
  set claims6 { type inet_proto . inet_service; }
  set masq4 { type ipv4_addr; flags interval; }
  set masq6 { type ipv6_addr; flags interval; }
  chain mapped {
    # ::1 never leaves lo (IPv6 has no route_localnet): a DNAT of it would be dropped. tetherd's userspace
    # proxy listens on [::1] for these ports instead (tetherd/ports-proxy.ts), and must see the connection.
    ip6 daddr ::1 return
    meta nfproto ipv4 dnat ip to ip daddr . meta l4proto . th dport map @host4
    meta nfproto ipv6 dnat ip6 to ip6 daddr . meta l4proto . th dport map @host6
    meta nfproto ipv4 dnat ip to meta l4proto . th dport map @wild4
    meta nfproto ipv6 dnat ip6 to meta l4proto . th dport map @wild6
  }
  chain prerouting {
    type nat hook prerouting priority dstnat; policy accept;
    fib daddr type local jump mapped
  }
  chain output {
    type nat hook output priority -100; policy accept;
    fib daddr type local jump mapped
  }
  chain postrouting {
    type nat hook postrouting priority srcnat; policy accept;
    ct status dnat ip saddr 127.0.0.0/8 masquerade
    ct status dnat ip saddr @masq4 masquerade
    ct status dnat ip6 saddr @masq6 masquerade
  }
  chain track {
    type filter hook prerouting priority filter; policy accept;
    meta l4proto udp ct status dnat update @udp_active { ct original proto-dst }
  }
  chain track_local {
    type filter hook output priority filter; policy accept;
    meta l4proto udp ct status dnat update @udp_active { ct original proto-dst }
  }
  chain guard {
    # route_localnet (needed to DNAT 127.0.0.1) would otherwise let anything on the wire reach the host's loopback services.
    type filter hook prerouting priority raw; policy accept;
    iifname != "lo" ip daddr 127.0.0.0/8 drop
  }
}
`;
}

/** Makes sure the node's port-mapping table exists; one netlink lookup when it does. */
export function ensurePortsTable(): 'present' | 'written' {
  const check = () => {
    const t = nftGetTable(NFPROTO_INET, PORTS_TABLE);
    if (t && t.comment !== PORTS_COMMENT) {
      throw new Error(`nftables table inet ${PORTS_TABLE} exists with comment ${JSON.stringify(t.comment)}, not ${JSON.stringify(PORTS_COMMENT)}: it was written by another tether version; drain the node's mapped pods and delete the table`);
    }
    return t !== null;
  };
  if (check()) return 'present';
  try {
    runNftScript(portsScript(), 'portMappings', PORTS_TABLE);
  } catch (e) {
    if (check()) return 'present'; // another ADD created it first
    throw e;
  }
  return 'written';
}
