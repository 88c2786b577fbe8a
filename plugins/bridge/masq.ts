import { runNftScript } from '../../lib/nft-script.js';
import { formatCIDR, networkCIDR, parseCIDR, type CIDR } from '../../lib/ip/addr.js';
import { nftGetTable, NFPROTO_INET } from '../../lib/netlink/nftables.js';
import { fnv1a } from '../common/names.js';

/**
 * Masquerading is one nftables table per network, keyed on the network's subnets, not one chain per
 * container (the reference plugins' iptables chains are why their DEL costs ~75 ms). A container ADD
 * pays one netlink lookup; the table is (re)written with `nft` only when missing or when the subnets
 * change, as a single atomic transaction that is safe to race.
 */
export function masqTableName(network: string): string {
  return `tether_masq_${fnv1a(network).slice(0, 8)}`;
}

export function masqComment(network: string, subnets: CIDR[]): string {
  return `tether masquerade network=${network} subnets=${subnets.map((s) => formatCIDR(networkCIDR(s))).sort().join(',')}`;
}

export function masqScript(network: string, subnets: CIDR[]): string {
  const table = masqTableName(network);
  const rules = subnets.map((s) => {
    const net = formatCIDR(networkCIDR(s));
    return s.ip.family === 4
      ? `    ip saddr ${net} ip daddr != ${net} ip daddr != 224.0.0.0/4 masquerade`
      : `    ip6 saddr ${net} ip6 daddr != ${net} ip6 daddr != ff00::/8 masquerade`;
  });
  // add + delete + create in one transaction: replaces an outdated table atomically, and works when absent.
  return [
    `add table inet ${table}`,
    `delete table inet ${table}`,
    `table inet ${table} {`,
    `  comment "${masqComment(network, subnets)}"`,
    '  chain postrouting {',
    '    type nat hook postrouting priority srcnat; policy accept;',
    ...rules,
    '  }',
    '}',
    '',
  ].join('\n');
}

/** The subnets a table's comment records (as written by masqComment). */
export function subnetsOfComment(comment: string | undefined): CIDR[] {
  const m = /subnets=(\S*)/.exec(comment ?? '');
  return m ? m[1].split(',').map((x) => parseCIDR(x)).filter((c): c is CIDR => c !== null) : [];
}

/**
 * Makes sure the network's masquerade table covers these subnets. The table only ever grows to the union
 * of what containers have needed: a network whose range set spans two subnets must not lose one subnet's
 * rule each time a container from the other one is added. Runs in the plugin's (host) namespace.
 */
export function ensureMasquerade(network: string, subnets: CIDR[]): 'present' | 'written' {
  const existing = subnetsOfComment(nftGetTable(NFPROTO_INET, masqTableName(network))?.comment);
  const key = (c: CIDR) => formatCIDR(networkCIDR(c));
  const union = new Map(existing.map((c) => [key(c), networkCIDR(c)]));
  for (const c of subnets) union.set(key(c), networkCIDR(c));
  if (union.size === existing.length && existing.length > 0) return 'present';
  runNftScript(masqScript(network, [...union.values()]), 'ipMasq', masqTableName(network));
  return 'written';
}

/** Removes a network's masquerade table; absent is fine (add + delete in one transaction). */
export function removeMasquerade(network: string): void {
  const table = masqTableName(network);
  runNftScript(`add table inet ${table}\ndelete table inet ${table}\n`, 'ipMasq', table);
}
