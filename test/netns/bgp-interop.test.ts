import test from 'ava';
import { execFileSync } from 'node:child_process';
import { chmodSync, chownSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { ProgramConfig } from '../../lib/bgp/program.js';
import { BgpLab, sleep, waitFor } from '../helpers/bgp-lab.js';

// Our speaker against BIRD 2, GoBGP and FRR, each in its own pair of namespaces joined by a veth on
// 198.18.0.0/24 (us .1, the peer .2) and 2001:db8:18::/64. Serial: every case runs real daemons with
// second-scale timers on a small shared machine.

const root = fileURLToPath(new URL('../../../', import.meta.url));
const lab = new BgpLab();
test.after.always(() => lab.cleanup());

/** BIRD in the peer namespace: an IPv4 and an IPv6 session to us, its own blocks as blackholes. */
function birdConf(o: { blocks4?: string[]; blocks6?: string[]; asn?: number; ourAsn?: number; ttlSecurity?: boolean } = {}): string {
  const statics = (name: string, fam: string, blocks: string[]) => `protocol static ${name} {\n  ${fam};\n${blocks.map((b) => `  route ${b} blackhole;`).join('\n')}\n}\n`;
  const session = (name: string, local: string, neighbor: string, fam: string, exportFrom: string) => `
protocol bgp ${name} {
  local ${local} as ${o.asn ?? 64512};
  neighbor ${neighbor} as ${o.ourAsn ?? 64512};
  direct;
  hold time 9;
  keepalive time 3;
  connect retry time 2;
  error wait time 1,2;
  graceful restart on;${o.ttlSecurity ? '\n  ttl security on;' : ''}
  ${fam} { import all; export where proto = "${exportFrom}"; next hop self; };
}`;
  return `log "${lab.dir}/bird.log" all;
router id 198.18.0.2;
protocol device { scan time 2; }
protocol kernel kernel4 { ipv4 { import none; export where source = RTS_BGP; }; scan time 2; }
protocol kernel kernel6 { ipv6 { import none; export where source = RTS_BGP; }; scan time 2; }
${statics('blocks4', 'ipv4', o.blocks4 ?? ['10.244.2.0/26'])}
${statics('blocks6', 'ipv6', o.blocks6 ?? ['2001:db8:244:2::/122'])}
${session('tether4', '198.18.0.2', '198.18.0.1', 'ipv4', 'blocks4')}
${session('tether6', '2001:db8:18::2', '2001:db8:18::1', 'ipv6', 'blocks6')}
`;
}

/** Our side: one IPv4 and one IPv6 session to .2, announcing our blocks. */
function ours(o: Partial<ProgramConfig> & { peerAsn?: number; holdTime?: number; ttlSecurity?: boolean } = {}): ProgramConfig {
  const peer = (address: string, localAddress: string, family: 4 | 6) => ({
    address, localAddress, asn: o.peerAsn ?? 64512, holdTime: o.holdTime ?? 9, connectRetryTime: 2, idleHoldTime: 1, families: [family],
    ...(o.ttlSecurity ? { ttlSecurity: true } : {}),
  });
  return {
    asn: 64512, routerId: '198.18.0.1',
    listen: [{ address: '198.18.0.1' }, { address: '2001:db8:18::1' }],
    peers: [peer('198.18.0.2', '198.18.0.1', 4), peer('2001:db8:18::2', '2001:db8:18::1', 6)],
    announce: ['10.244.1.0/26', '2001:db8:244:1::/122', { prefix: '10.244.7.9/32', blackhole: false }],
    ...o,
  };
}

const established = (s: ReturnType<BgpLab['speaker']>, addr: string) => s.peer(addr)?.state === 'Established';

test.serial('BIRD: both sessions Established, blocks become kernel routes on both sides, blackholes at home', async (t) => {
  const { us, peer, usPath, peerPath } = lab.pair('b1');
  const bird = lab.bird(peer, 'bird-b1', birdConf());
  const s = lab.speaker(us, 'us-b1', ours());
  await waitFor('both sessions Established', () => established(s, '198.18.0.2') && established(s, '2001:db8:18::2'));
  await waitFor('BIRD sees Established twice', () => (bird.birdc('show', 'protocols').match(/Established/g) ?? []).length === 2);
  // Our blocks in BIRD's kernel, via us, installed by BIRD.
  const birdRoutes = () => ({ ...lab.routeMap(peerPath, 4, 12), ...lab.routeMap(peerPath, 6, 12) });
  await waitFor('our blocks in the peer kernel', () => birdRoutes()['10.244.1.0/26'] && birdRoutes()['2001:db8:244:1::/122'] && birdRoutes()['10.244.7.9/32']);
  t.deepEqual(birdRoutes(), { '10.244.1.0/26': 'via 198.18.0.1', '10.244.7.9/32': 'via 198.18.0.1', '2001:db8:244:1::/122': 'via 2001:db8:18::1' });
  // BIRD's blocks in our kernel under our protocol, and our own blocks as blackholes (the /32 is borrowed: none).
  const mine = () => ({ ...lab.routeMap(usPath, 4), ...lab.routeMap(usPath, 6) });
  await waitFor('BIRD blocks in our kernel', () => mine()['10.244.2.0/26'] && mine()['2001:db8:244:2::/122']);
  t.deepEqual(mine(), {
    '10.244.1.0/26': 'blackhole', '10.244.2.0/26': 'via 198.18.0.2',
    '2001:db8:244:1::/122': 'blackhole', '2001:db8:244:2::/122': 'via 2001:db8:18::2',
  });
  const st = await waitFor('counts in the status snapshot', () => {
    const x = s.status();
    return x?.peers.find((p) => p.address === '198.18.0.2')?.prefixesIn === 1 && x.routes.learned.length === 2 ? x : null;
  });
  t.like(st.peers.find((p) => p.address === '198.18.0.2'), { prefixesIn: 1, prefixesOut: 2, routerId: '198.18.0.2' });
  t.like(st.routes.learned.find((r) => r.prefix === '10.244.2.0/26'), { nextHop: '198.18.0.2', localPref: 100, best: true });
  // A clean stop: Cease to BIRD, which withdraws our blocks; our kernel routes are all removed.
  t.is(await s.stop(), 0);
  await waitFor('BIRD withdrew our blocks', () => Object.keys(birdRoutes()).length === 0);
  t.deepEqual(mine(), {});
  t.regex(bird.birdc('show', 'protocols', 'all', 'tether4'), /Received: Administrative shutdown/);
});

test.serial('BIRD: a withdraw in BIRD removes our kernel route; graceful restart keeps routes until End-of-RIB', async (t) => {
  const { us, peer, usPath } = lab.pair('b2');
  let bird = lab.bird(peer, 'bird-b2', birdConf({ blocks4: ['10.244.2.0/26', '10.244.3.0/26'] }));
  const s = lab.speaker(us, 'us-b2', ours());
  const mine = () => lab.routeMap(usPath, 4);
  await waitFor('two BIRD blocks in our kernel', () => mine()['10.244.2.0/26'] && mine()['10.244.3.0/26']);
  // Withdraw one: reconfigure BIRD without it.
  bird.birdc('configure', `"${lab.file('bird-b2.conf', birdConf({ blocks4: ['10.244.2.0/26'] }))}"`);
  await waitFor('the withdrawn block left our kernel', () => !mine()['10.244.3.0/26']);
  t.is(mine()['10.244.2.0/26'], 'via 198.18.0.2');
  // BIRD dies without a word (SIGKILL): no NOTIFICATION, so its routes stay, marked stale.
  lab.kill(bird.pid, 'SIGKILL');
  await lab.waitGone(bird.pid);
  await waitFor('session down', () => !established(s, '198.18.0.2'), 20_000);
  t.is(mine()['10.244.2.0/26'], 'via 198.18.0.2', 'kept during the restart');
  t.true(s.status()!.routes.learned.filter((r) => r.peer === '198.18.0.2').every((r) => r.stale));
  t.truthy(s.peer('198.18.0.2')!.gracefulRestart);
  // BIRD comes back in recovery mode (R bit, forwarding preserved) announcing another block instead:
  // the old one stays until BIRD's End-of-RIB, then goes; the new one arrives.
  await sleep(1500);
  t.is(mine()['10.244.2.0/26'], 'via 198.18.0.2');
  bird = lab.bird(peer, 'bird-b2', birdConf({ blocks4: ['10.244.4.0/26'] }), true);
  await waitFor('re-established', () => established(s, '198.18.0.2'));
  await waitFor('End-of-RIB swept the stale block', () => !mine()['10.244.2.0/26'] && mine()['10.244.4.0/26'], 40_000);
  await waitFor('no stale route in the status snapshot', () => s.status()?.routes.learned.every((r) => !r.stale));
  t.true(s.log().includes('End-of-RIB for IPv4'));
  await s.stop();
});

test.serial('BIRD: a wrong peer AS is refused with NOTIFICATION 2/2 both ways; a silent peer trips the hold timer', async (t) => {
  const { us, peer } = lab.pair('b3');
  const bird = lab.bird(peer, 'bird-b3', birdConf());
  // We expect AS 64999 but BIRD is 64512: we refuse BIRD's OPEN.
  const s = lab.speaker(us, 'us-b3', ours({ peerAsn: 64999 }));
  await waitFor('we sent 2/2', () => s.peer('198.18.0.2')?.lastError?.startsWith('sent NOTIFICATION 2/2'));
  t.is(s.peer('198.18.0.2')!.lastError, 'sent NOTIFICATION 2/2 data 0000fc00');
  await waitFor('BIRD got Bad peer AS', () => /Received: Bad peer AS/.test(bird.birdc('show', 'protocols', 'all', 'tether4')));
  await s.stop();
  // Our AS is not what BIRD expects: BIRD refuses our OPEN with 2/2.
  const s2 = lab.speaker(us, 'us-b3b', ours({ asn: 64999, peerAsn: 64512 }));
  await waitFor('BIRD sent 2/2', () => s2.peer('198.18.0.2')?.lastError?.startsWith('received NOTIFICATION 2/2'));
  await s2.stop();
  // Hold timer: BIRD frozen (SIGSTOP) sends nothing; we give up after the negotiated 9 s with 4/0.
  const s3 = lab.speaker(us, 'us-b3c', ours());
  await waitFor('Established', () => established(s3, '198.18.0.2'));
  lab.kill(bird.pid, 'SIGSTOP');
  try {
    await waitFor('hold timer expired', () => s3.peer('198.18.0.2')?.lastError === 'sent NOTIFICATION 4/0', 30_000);
  } finally {
    lab.kill(bird.pid, 'SIGCONT');
  }
  t.pass();
  await s3.stop();
});

test.serial('BIRD with TTL security (GTSM): our sessions send TTL 255 and come up, IPv4 and IPv6', async (t) => {
  const { us, peer } = lab.pair('b4');
  // Enforce GTSM on the peer side independently of BIRD: BGP packets with a TTL below 255 are dropped.
  // (By path: npm puts node_modules/.bin first, and @vercel/nft installs an `nft` there.)
  lab.exec(peer, ['/usr/sbin/nft', '-f', lab.file('gtsm.nft', `table inet tbg_gtsm {
  chain in {
    type filter hook input priority 0;
    tcp dport 179 ip ttl != 255 counter drop
    tcp sport 179 ip ttl != 255 counter drop
    tcp dport 179 ip6 hoplimit != 255 counter drop
    tcp sport 179 ip6 hoplimit != 255 counter drop
  }
}
`)]);
  let bird = lab.bird(peer, 'bird-b4', birdConf({ ttlSecurity: true }));
  // Without it our packets leave with TTL 64 and BIRD drops them: no session in 8 s.
  const plain = lab.speaker(us, 'us-b4a', ours());
  await sleep(8000);
  t.false(established(plain, '198.18.0.2') || established(plain, '2001:db8:18::2'));
  t.false(/Established/.test(bird.birdc('show', 'protocols')));
  await plain.stop();
  // Start BIRD afresh, so nothing of the plain round (a half-open attempt, an error back-off) lingers.
  bird.birdc('down');
  await lab.waitGone(bird.pid);
  bird = lab.bird(peer, 'bird-b4', birdConf({ ttlSecurity: true }));
  const s = lab.speaker(us, 'us-b4', ours({ ttlSecurity: true }));
  await waitFor('both sessions Established', () => established(s, '198.18.0.2') && established(s, '2001:db8:18::2'));
  await waitFor('BIRD sees both Established', () => (bird.birdc('show', 'protocols').match(/Established/g) ?? []).length === 2);
  // The plain round's packets were the ones dropped.
  t.regex(lab.exec(peer, ['/usr/sbin/nft', 'list', 'table', 'inet', 'tbg_gtsm']), /counter packets [1-9]/);
  await s.stop();
});

interface GobgpNeighbor { address: string; peerAs: number; localAddress?: string; afiSafi: 'ipv4-unicast' | 'ipv6-unicast' }

/** A gobgpd configuration: our lab peers use short timers (hold 9 s, keepalive 3 s, retry 2 s). */
function gobgpConfig(c: { as: number; routerId: string; localAddresses: string[]; neighbors: GobgpNeighbor[] }): string {
  const neighbor = (n: GobgpNeighbor) => `
[[neighbors]]
  [neighbors.config]
    neighbor-address = "${n.address}"
    peer-as = ${n.peerAs}
  [neighbors.timers.config]
    hold-time = 9
    keepalive-interval = 3
    connect-retry = 2${n.localAddress ? `
  [neighbors.transport.config]
    local-address = "${n.localAddress}"` : ''}
  [[neighbors.afi-safis]]
    [neighbors.afi-safis.config]
      afi-safi-name = "${n.afiSafi}"`;
  return `
[global.config]
  as = ${c.as}
  router-id = "${c.routerId}"
  local-address-list = [${c.localAddresses.map((a) => `"${a}"`).join(', ')}]${c.neighbors.map(neighbor).join('')}
`;
}

test.serial('GoBGP: routes it announces become our kernel routes, its withdraws remove them; it learns our blocks', async (t) => {
  const { us, peer, usPath } = lab.pair('g1');
  const toml = lab.file('gobgp-g1.toml', gobgpConfig({
    as: 64512, routerId: '198.18.0.2', localAddresses: ['198.18.0.2', '2001:db8:18::2'],
    neighbors: [
      { address: '198.18.0.1', peerAs: 64512, localAddress: '198.18.0.2', afiSafi: 'ipv4-unicast' },
      { address: '2001:db8:18::1', peerAs: 64512, localAddress: '2001:db8:18::2', afiSafi: 'ipv6-unicast' },
    ],
  }));
  const gobgpd = lab.spawn(peer, ['gobgpd', '-f', toml, '--api-hosts', '127.0.0.1:50051', '--pprof-disable', '-l', 'info'], 'gobgpd-g1.log');
  const gobgp = (...a: string[]) => lab.exec(peer, ['gobgp', '-u', '127.0.0.1', '-p', '50051', ...a]);
  // The compiled binary this time.
  const s = lab.speaker(us, 'us-g1', ours({ listen: [{ address: '198.18.0.1' }, { address: '2001:db8:18::1' }] }), 'binary');
  await waitFor('both sessions Established', () => established(s, '198.18.0.2') && established(s, '2001:db8:18::2'));
  t.truthy(gobgpd.pid);
  await waitFor('GoBGP sees both Established', () => {
    const n = JSON.parse(gobgp('-j', 'neighbor')) as any[];
    return n.length === 2 && n.every((x) => x.state.session_state === 6);
  });
  // GoBGP learned our blocks.
  const adj = await waitFor('our /26 in GoBGP', () => {
    const r = JSON.parse(gobgp('-j', 'neighbor', '198.18.0.1', 'adj-in', '-a', 'ipv4'));
    return r['10.244.1.0/26'] ? r : null;
  });
  t.truthy(adj['10.244.7.9/32']);
  await waitFor('our IPv6 block in GoBGP', () => JSON.parse(gobgp('-j', 'neighbor', '2001:db8:18::1', 'adj-in', '-a', 'ipv6'))['2001:db8:244:1::/122']);
  // GoBGP announces: our kernel installs; it withdraws: our kernel removes.
  gobgp('global', 'rib', 'add', '-a', 'ipv4', '10.244.5.0/26', 'origin', 'igp', 'med', '10', 'community', '64512:100');
  gobgp('global', 'rib', 'add', '-a', 'ipv6', '2001:db8:244:5::/122', 'origin', 'igp');
  const mine = () => ({ ...lab.routeMap(usPath, 4), ...lab.routeMap(usPath, 6) });
  await waitFor('GoBGP routes in our kernel', () => mine()['10.244.5.0/26'] && mine()['2001:db8:244:5::/122']);
  t.is(mine()['10.244.5.0/26'], 'via 198.18.0.2');
  t.is(mine()['2001:db8:244:5::/122'], 'via 2001:db8:18::2');
  // The status file trails the kernel by up to 250 ms (snapshots are debounced).
  const learned = await waitFor('the route in the status snapshot', () => s.status()?.routes.learned.find((r) => r.prefix === '10.244.5.0/26'));
  t.like(learned, { med: 10, communities: ['64512:100'], localPref: 100 });
  // cnictl reads the same state.
  const cnictl = (...a: string[]) => execFileSync(join(root, 'dist/bin/cnictl'), ['bgp', ...a, '--bgp-status', s.statusFile], { encoding: 'utf8' });
  const peersOut = cnictl('peers');
  t.regex(peersOut, /^198\.18\.0\.2 +64512 +Established +\d\d:\d\d:\d\d +198\.18\.0\.2 +1 +2$/m);
  t.regex(cnictl('routes'), /^\* +10\.244\.5\.0\/26 +198\.18\.0\.2 +198\.18\.0\.2 +\(iBGP\) +lp 100 med 10 64512:100$/m);
  t.is(JSON.parse(cnictl('peers', '--json')).length, 2);
  gobgp('global', 'rib', 'del', '-a', 'ipv4', '10.244.5.0/26');
  gobgp('global', 'rib', 'del', '-a', 'ipv6', '2001:db8:244:5::/122');
  await waitFor('withdrawn from our kernel', () => !mine()['10.244.5.0/26'] && !mine()['2001:db8:244:5::/122']);
  t.deepEqual(mine(), { '10.244.1.0/26': 'blackhole', '2001:db8:244:1::/122': 'blackhole' });
  // Announce and withdraw at runtime on our side (SIGHUP reload): GoBGP follows.
  s.reload(ours({ announce: ['10.244.1.0/26', '10.244.6.0/26', '2001:db8:244:1::/122'] }));
  await waitFor('GoBGP got the new block and lost the /32', () => {
    const r = JSON.parse(gobgp('-j', 'neighbor', '198.18.0.1', 'adj-in', '-a', 'ipv4'));
    return r['10.244.6.0/26'] && !r['10.244.7.9/32'];
  });
  await s.stop();
  lab.kill(gobgpd.pid!);
  await lab.waitGone(gobgpd.pid!);
});

test.serial('GoBGP over eBGP with a 4-byte ASN: AS_TRANS in OPEN, our AS prepended, no LOCAL_PREF, AS-path loops refused', async (t) => {
  const { us, peer, usPath } = lab.pair('g2');
  const toml = lab.file('gobgp-g2.toml', gobgpConfig({
    as: 4200000001, routerId: '198.18.0.2', localAddresses: ['198.18.0.2'],
    neighbors: [{ address: '198.18.0.1', peerAs: 64512, afiSafi: 'ipv4-unicast' }],
  }));
  const gobgpd = lab.spawn(peer, ['gobgpd', '-f', toml, '--api-hosts', '127.0.0.1:50052', '--pprof-disable'], 'gobgpd-g2.log');
  const gobgp = (...a: string[]) => lab.exec(peer, ['gobgp', '-p', '50052', ...a]);
  const s = lab.speaker(us, 'us-g2', ours({
    listen: [{ address: '198.18.0.1' }],
    peers: [{ address: '198.18.0.2', localAddress: '198.18.0.1', asn: 4200000001, holdTime: 9, connectRetryTime: 2, idleHoldTime: 1, families: [4] }],
  }));
  await waitFor('Established', () => established(s, '198.18.0.2'));
  const adj = await waitFor('our block in GoBGP', () => JSON.parse(gobgp('-j', 'neighbor', '198.18.0.1', 'adj-in', '-a', 'ipv4'))['10.244.1.0/26']?.[0]);
  const attrs = adj.attrs as { type: number; as_paths?: { asns: number[] }[] }[];
  t.deepEqual(attrs.find((a) => a.type === 2)?.as_paths?.[0].asns, [64512]);
  t.false(attrs.some((a) => a.type === 5), 'no LOCAL_PREF to an eBGP peer');
  gobgp('global', 'rib', 'add', '-a', 'ipv4', '10.244.5.0/26', 'origin', 'igp');
  // A path that already went through our AS must not be taken (GoBGP prepends its own AS to it).
  gobgp('global', 'rib', 'add', '-a', 'ipv4', '10.244.6.0/26', 'aspath', '64512');
  await waitFor('the eBGP route in our kernel', () => lab.routeMap(usPath, 4)['10.244.5.0/26']);
  const learned = await waitFor('its AS path', () => s.status()?.routes.learned.find((r) => r.prefix === '10.244.5.0/26'));
  t.deepEqual(learned.asPath, [4200000001]);
  t.is(learned.localPref, undefined);
  await sleep(1000);
  t.falsy(lab.routeMap(usPath, 4)['10.244.6.0/26']);
  t.regex(s.log(), /contains our AS/);
  await s.stop();
  lab.kill(gobgpd.pid!);
  await lab.waitGone(gobgpd.pid!);
});

test.serial('two of our speakers in a mesh from a node list: one active side, blocks and a borrowed /32 both ways', async (t) => {
  const { us, peer, usPath, peerPath } = lab.pair('m1');
  const nodes = [{ name: 'a', address: '198.18.0.1' }, { name: 'b', address: '198.18.0.2' }];
  const node = (self: string, routerId: string, announce: ProgramConfig['announce']): ProgramConfig => ({
    asn: 64512, routerId, listen: [{ address: routerId }], announce,
    topology: { self, nodes, defaults: { holdTime: 9, connectRetryTime: 2, idleHoldTime: 1, families: [4] } },
  });
  const a = lab.speaker(us, 'mesh-a', node('a', '198.18.0.1', ['10.244.1.0/26']), 'binary');
  const b = lab.speaker(peer, 'mesh-b', node('b', '198.18.0.2', ['10.244.2.0/26', { prefix: '10.244.1.77/32', blackhole: false }]));
  await waitFor('a has b\'s block and the borrowed /32', () => lab.routeMap(usPath, 4)['10.244.2.0/26'] && lab.routeMap(usPath, 4)['10.244.1.77/32']);
  await waitFor('b has a\'s block', () => lab.routeMap(peerPath, 4)['10.244.1.0/26']);
  t.deepEqual(lab.routeMap(usPath, 4), { '10.244.1.0/26': 'blackhole', '10.244.1.77/32': 'via 198.18.0.2', '10.244.2.0/26': 'via 198.18.0.2' });
  t.deepEqual(lab.routeMap(peerPath, 4), { '10.244.1.0/26': 'via 198.18.0.1', '10.244.2.0/26': 'blackhole' });
  // The lower address connects, the higher one only listens: no collision to resolve.
  t.false(a.log().includes('collision') || b.log().includes('collision'));
  await waitFor('both report Established', () => established(a, '198.18.0.2') && established(b, '198.18.0.1'));
  // Traffic follows the learned route: a "pod" address of b's block answers a ping from a's namespace.
  lab.addAddress(peerPath, 'lo', '10.244.2.1/32');
  lab.exec(us, ['ping', '-c', '1', '-W', '2', '10.244.2.1']);
  await a.stop();
  await waitFor('b dropped a\'s block', () => !lab.routeMap(peerPath, 4)['10.244.1.0/26']);
  await b.stop();
});

test.serial('FRR: bgpd + zebra, Established, routes both ways', async (t) => {
  const { us, peer, usPath, peerPath } = lab.pair('f1');
  // FRR drops privileges to its own user (and insists on the frrvty group): give it a directory it owns.
  const d = `${lab.dir}/frr-f1`;
  const uid = Number(lab.exec(peer, ['id', '-u', 'frr']).trim());
  const gid = Number(lab.exec(peer, ['id', '-g', 'frr']).trim());
  mkdirSync(d);
  chmodSync(lab.dir, 0o711);
  chownSync(d, uid, gid);
  const conf = `${d}/frr.conf`;
  writeFileSync(conf, `
frr defaults traditional
hostname tbg-frr
log file ${d}/frr-f1.log
ip route 10.244.8.0/26 blackhole
router bgp 64512
 bgp router-id 198.18.0.2
 no bgp ebgp-requires-policy
 no bgp default ipv4-unicast
 neighbor 198.18.0.1 remote-as 64512
 neighbor 198.18.0.1 timers 3 9
 neighbor 198.18.0.1 timers connect 2
 address-family ipv4 unicast
  neighbor 198.18.0.1 activate
  network 10.244.8.0/26
 exit-address-family
`);
  chownSync(conf, uid, gid);
  const common = ['-f', conf, '-z', `${d}/f1-zserv.api`, '--vty_socket', d, '-P', '0', '-u', 'frr', '-g', 'frr', '-d'];
  lab.exec(peer, ['/usr/lib/frr/zebra', ...common, '-i', `${d}/f1-zebra.pid`]);
  lab.daemonPid(`${d}/f1-zebra.pid`);
  await sleep(500);
  lab.exec(peer, ['/usr/lib/frr/staticd', ...common, '-i', `${d}/f1-staticd.pid`]);
  lab.daemonPid(`${d}/f1-staticd.pid`);
  lab.exec(peer, ['/usr/lib/frr/bgpd', ...common, '-i', `${d}/f1-bgpd.pid`]);
  lab.daemonPid(`${d}/f1-bgpd.pid`);
  const s = lab.speaker(us, 'us-f1', ours({ peers: [{ address: '198.18.0.2', localAddress: '198.18.0.1', asn: 64512, holdTime: 9, connectRetryTime: 2, idleHoldTime: 1 }] }));
  await waitFor('Established with FRR', () => established(s, '198.18.0.2'));
  const vtysh = (cmd: string) => lab.exec(peer, ['vtysh', '--vty_socket', d, '-c', cmd]);
  await waitFor('FRR sees Established', () => /Established/.test(vtysh('show bgp neighbors 198.18.0.1')));
  await waitFor('FRR block in our kernel', () => lab.routeMap(usPath, 4)['10.244.8.0/26']);
  t.is(lab.routeMap(usPath, 4)['10.244.8.0/26'], 'via 198.18.0.2');
  // zebra installs what FRR learned from us with its own protocol number (186, "bgp").
  await waitFor('our block in FRR kernel', () => lab.routeMap(peerPath, 4, 186)['10.244.1.0/26']);
  t.is(lab.routeMap(peerPath, 4, 186)['10.244.1.0/26'], 'via 198.18.0.1');
  await s.stop();
  await waitFor('FRR dropped our block', () => !lab.routeMap(peerPath, 4, 186)['10.244.1.0/26']);
});
