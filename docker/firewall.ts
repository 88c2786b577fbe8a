import { runNft } from '../plugins/bridge/masq.js';
import type { NetworkRecord } from './state.js';

// What Docker's bridge driver does with its DOCKER-ISOLATION chains, for tether's networks: containers
// on two networks of one host do not reach each other, and an --internal network reaches nothing beyond
// its bridge. One table for every network, rewritten whole (one atomic nft transaction) when a network
// comes or goes: never per container.

export const FIREWALL_TABLE = 'tether_docker';

const q = (s: string) => JSON.stringify(s);

export function firewallScript(networks: NetworkRecord[]): string {
  const rules: string[] = [];
  const bridges = networks.map((n) => n.bridge).sort();
  for (const n of [...networks].sort((a, b) => a.bridge.localeCompare(b.bridge))) {
    const others = bridges.filter((b) => b !== n.bridge);
    if (n.internal) {
      rules.push(`    iifname ${q(n.bridge)} oifname != ${q(n.bridge)} drop comment ${q(`internal ${n.id.slice(0, 12)}`)}`);
      rules.push(`    oifname ${q(n.bridge)} iifname != ${q(n.bridge)} drop comment ${q(`internal ${n.id.slice(0, 12)}`)}`);
    } else if (others.length) {
      rules.push(`    iifname ${q(n.bridge)} oifname { ${others.map(q).join(', ')} } drop comment ${q(`isolate ${n.id.slice(0, 12)}`)}`);
    }
  }
  const head = [`add table inet ${FIREWALL_TABLE}`, `delete table inet ${FIREWALL_TABLE}`];
  if (!networks.length) return `${head.join('\n')}\n`;
  return [
    ...head,
    `table inet ${FIREWALL_TABLE} {`,
    `  comment "tether docker networks: ${networks.length}"`,
    '  chain forward {',
    '    type filter hook forward priority filter; policy accept;',
    ...rules,
    '  }',
    '}',
    '',
  ].join('\n');
}

/** Puts the rules for exactly these networks in place. */
export function writeFirewall(networks: NetworkRecord[]): void {
  runNft(firewallScript(networks), `programming nftables table ${FIREWALL_TABLE} (network isolation)`, 'docker network');
}
