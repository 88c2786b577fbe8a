import { existsSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { loadNetworkList } from '../lib/libcni/conf.js';
import { describeResult } from '../cnictl/format.js';
import { Lab } from '../conformance/lab.js';
import { runIn } from '../conformance/spawn.js';
import { Netlink } from '../lib/netlink/handle.js';
import { formatCIDR, formatIP, parseCIDR } from '../lib/ip/addr.js';

// `npm start`: two pods on a bridge, inside a throwaway host namespace so this machine's own
// network is never touched. Every namespace it makes is removed at the end (or on Ctrl-C).

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
const say = (s = '') => process.stdout.write(`${s}\n`);

function describeNamespace(title: string, path: string): void {
  Netlink.within(path, (nl) => {
    const links = nl.links();
    const name = new Map(links.map((l) => [l.index, l.name]));
    say(`  ${title}`);
    for (const l of links) {
      const addrs = nl.addrs({ index: l.index }).filter((a) => a.scope === 0).map((a) => formatCIDR(a.cidr));
      const master = l.master ? ` on bridge ${name.get(l.master)}` : '';
      say(`    link ${l.name.padEnd(16)} ${(l.kind || 'device').padEnd(7)} ${l.up ? 'up  ' : 'down'} ${l.mac}${master}${addrs.length ? `  ${addrs.join(' ')}` : ''}`);
    }
    for (const r of nl.routes(4)) {
      say(`    route ${r.dst ? formatCIDR(r.dst) : 'default'}${r.gateway ? ` via ${formatIP(r.gateway)}` : ''} dev ${name.get(r.oif ?? -1) ?? '?'}`);
    }
  });
}

async function main(): Promise<number> {
  const tetherBridge = join(root, 'dist', 'bin', 'tether-bridge');
  const [network, path] = existsSync(tetherBridge)
    ? ['tether-bridge', [join(root, 'dist', 'bin'), '/usr/lib/cni']]
    : ['ref-bridge', ['/usr/lib/cni']];
  const list = loadNetworkList(join(root, 'conformance', 'networks'), network);
  say(`tether demo: two pods on network "${list.name}" (${list.plugins.map((p) => p.type).join(' -> ')})`);
  const lab = new Lab(list, path);
  try {
    say(`\n1. A throwaway host namespace ${lab.host} stands in for the node; pods get namespaces of their own.`);
    const pods = [lab.newContainer(), lab.newContainer()];
    const results = [];
    for (const [i, pod] of pods.entries()) {
      const t = Date.now();
      const r = await lab.attach(pod);
      results.push(r);
      const exec = lab.runtime.lastExecs.map((e) => `${e.plugin} ${e.ms.toFixed(1)} ms`).join(', ');
      say(`\n2.${i + 1} ADD pod ${i + 1} (${pod.path}) in ${Date.now() - t} ms (plugin execs: ${exec}):`);
      say(describeResult(r));
    }
    say('\n3. What the node and pod 1 look like now:');
    describeNamespace(`node (${lab.host})`, lab.host);
    describeNamespace(`pod 1 (${pods[0].path})`, pods[0].path);
    const target = formatIP(parseCIDR(results[1].ips![0].address)!.ip);
    say(`\n4. pod 1 pings pod 2 at ${target}:`);
    const ping = await runIn(pods[0].path, 'ping', ['-n', '-c', '3', '-i', '0.2', '-W', '2', target], 10_000);
    for (const l of ping.stdout.trim().split('\n').filter((x) => /bytes from|packets transmitted/.test(x))) say(`   ${l}`);
    if (ping.status !== 0) { say('   ping FAILED'); return 1; }
    say('\n5. DEL both pods:');
    for (const pod of pods) { await lab.detach(pod); }
    describeNamespace('node after DEL (the bridge stays, as docker0 does; the veths are gone)', lab.host);
    return 0;
  } finally {
    lab.close();
    say(`\n6. Removed every namespace the demo made${lab.leftovers().length ? ` EXCEPT ${lab.leftovers().join(', ')}` : ''}.`);
  }
}

main().then((code) => { process.exitCode = code; }, (e: unknown) => { process.stderr.write(`demo: ${(e as Error).message}\n`); process.exitCode = 1; });
