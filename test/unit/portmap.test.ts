import test from 'ava';
import { CniError } from '../../lib/cni/errors.js';
import { parseBandwidth } from '../../lib/bandwidth/limits.js';
import { parseIP, parseCIDR } from '../../lib/ip/addr.js';
import { hostKey, portKey, target, wildKey } from '../../lib/portmap/elements.js';
import { prefixElements } from '../../lib/netlink/nft-set.js';
import { describeMapping, parsePortMappings } from '../../lib/portmap/mapping.js';

test('portMappings: defaults, hostIP forms, and containerd\'s Go field names', (t) => {
  const [a, b, c, d] = parsePortMappings([
    { hostPort: 8080, containerPort: 80 },
    { HostPort: 5353, ContainerPort: 53, Protocol: 'UDP', HostIP: '10.251.0.1' },
    { hostPort: 9000, containerPort: 90, protocol: 'sctp', hostIP: '0.0.0.0' },
    { hostPort: 9001, containerPort: 90, hostIP: '::' },
  ]);
  t.deepEqual(a, { hostPort: 8080, containerPort: 80, protocol: 'tcp' });
  t.deepEqual(b, { hostPort: 5353, containerPort: 53, protocol: 'udp', hostIP: parseIP('10.251.0.1')! });
  t.is(c.wildcardFamily, 4);
  t.is(d.wildcardFamily, 6);
  t.is(describeMapping(b), '5353/udp on 10.251.0.1');
  t.is(describeMapping(a), '8080/tcp on every host address');
  t.deepEqual(parsePortMappings(undefined), []);
});

test('portMappings: each bad entry is a code 7 error naming it', (t) => {
  const cases: [unknown, RegExp][] = [
    ['8080:80', /must be a list/],
    [[{ hostPort: 0, containerPort: 80 }], /\[0\]\.hostPort: must be a port number/],
    [[{ hostPort: 80, containerPort: 80.5 }], /\[0\]\.containerPort: must be a port number/],
    [[{ hostPort: 80, containerPort: 80, protocol: 'icmp' }], /\[0\]\.protocol: must be "tcp", "udp" or "sctp"/],
    [[{ hostPort: 80, containerPort: 80, hostIP: 'localhost' }], /\[0\]\.hostIP: must be an IPv4 or IPv6 address/],
    [[{ hostPort: 80, containerPort: 80 }, { hostPort: 80, containerPort: 81 }], /\[1\]: publishes 80\/tcp on every host address, which entry 0 already publishes/],
  ];
  for (const [raw, re] of cases) {
    const e = t.throws(() => parsePortMappings(raw), { instanceOf: CniError });
    t.is(e!.code, 7);
    t.regex(e!.message, re);
  }
});

test('element keys are laid out as nftables concatenations (fields padded to 4 bytes, ports big endian)', (t) => {
  t.is(wildKey('udp', 53).toString('hex'), '11000000' + '00350000');
  t.is(hostKey(parseIP('198.18.0.1')!, 'tcp', 8080).toString('hex'), 'c6120001' + '06000000' + '1f900000');
  t.is(target(parseIP('10.0.0.5')!, 80).toString('hex'), '0a000005' + '00500000');
  t.is(portKey(5353).toString('hex'), '14e9');
  const [start, end] = prefixElements(parseCIDR('10.9.0.0/24')!);
  t.is(start.key.toString('hex'), '0a090000');
  t.is(end.key.toString('hex'), '0a090100');
  t.is(end.flags, 1);
});

test('bandwidth: both spellings, pairs required, zero means no limit', (t) => {
  t.deepEqual(parseBandwidth({ IngressRate: 10_000_000, IngressBurst: 4294967295, EgressRate: 0, EgressBurst: 0 }), { ingressRate: 10_000_000, ingressBurst: 4294967295 });
  t.is(parseBandwidth({ ingressRate: 0 }), null);
  t.is(parseBandwidth(undefined), null);
  t.regex(t.throws(() => parseBandwidth({ egressRate: 1_000_000 }))!.message, /egressBurst: is needed with egressRate/);
  t.regex(t.throws(() => parseBandwidth({ egressRate: 1_000_000, egressBurst: 100 }))!.message, /must hold at least one full frame/);
  t.regex(t.throws(() => parseBandwidth({ ingressRate: -1, ingressBurst: 100000 }))!.message, /ingressRate: must be a whole number/);
});

test('the [::1] proxy listens for IPv6 mappings on every address or on ::1, tcp and udp only', async (t) => {
  const { loopbackListeners } = await import('../../tetherd/ports-proxy.js');
  const owner = { network: 'n', containerID: 'c', ifname: 'eth0' };
  const m = (hostPort: number, protocol: string, family: 4 | 6, hostIP?: string) => ({ owner, hostPort, protocol, family, containerIP: family === 6 ? 'fd00::2' : '10.0.0.2', containerPort: 80, ...(hostIP ? { hostIP } : {}) });
  const got = loopbackListeners([m(1, 'tcp', 6), m(1, 'tcp', 4), m(2, 'udp', 6), m(3, 'sctp', 6), m(4, 'tcp', 6, '::1'), m(5, 'tcp', 6, 'fd00::9'), m(6, 'tcp', 4, '127.0.0.1')]);
  t.deepEqual(got.map((l) => `${l.protocol}/${l.hostPort} -> [${l.target.ip}]:${l.target.port}`), ['tcp/1 -> [fd00::2]:80', 'udp/2 -> [fd00::2]:80', 'tcp/4 -> [fd00::2]:80']);
});

test('ledger: an attachment\'s map keys round-trip through its comment; a list too long becomes "*" (DEL scans)', async (t) => {
  const { ledgerComment, ledgerEntries, entryElement, ownerKey } = await import('../../lib/portmap/ledger.js');
  const entries = [
    { family: 4 as const, protocol: 'tcp' as const, hostPort: 8080 }, { family: 6 as const, protocol: 'udp' as const, hostPort: 53 },
    { family: 4 as const, protocol: 'sctp' as const, hostPort: 9, hostIP: '198.18.0.1' }, { family: 6 as const, protocol: 'tcp' as const, hostPort: 1, hostIP: '2001:db8::1' },
  ];
  const c = ledgerComment('net ctr eth0', entries);
  t.deepEqual(ledgerEntries(c), entries);
  t.deepEqual(entryElement(entries[0]), { set: 'wild4', key: wildKey('tcp', 8080) });
  t.deepEqual(entryElement(entries[3]), { set: 'host6', key: hostKey(parseIP('2001:db8::1')!, 'tcp', 1) });
  const many = Array.from({ length: 40 }, (_, i) => ({ family: 4 as const, protocol: 'tcp' as const, hostPort: 1000 + i }));
  t.is(ledgerComment('net ctr eth0', many), 'net ctr eth0|*');
  t.is(ledgerEntries('net ctr eth0|*'), null);
  t.is(ledgerEntries('net ctr eth0|w4/tcp/x'), null, 'unreadable: scan');
  t.is(ownerKey('a b c').length, 16);
  t.notDeepEqual(ownerKey('a b c'), ownerKey('a b d'));
  // FNV-1a 128's published vectors: the empty text is the offset basis.
  t.is(ownerKey('').toString('hex'), '6c62272e07bb014262b821756295c58d');
  t.is(ownerKey('a').toString('hex'), 'd228cb696f1a8caf78912b704e4a8964');
});

test('portMappings: one port on every address and on one address in the same request is refused', (t) => {
  const e = t.throws(() => parsePortMappings([{ hostPort: 80, containerPort: 80, hostIP: '0.0.0.0' }, { hostPort: 80, containerPort: 80, hostIP: '10.0.0.1' }]), { instanceOf: CniError });
  t.regex(e!.message, /portMappings\[1\]: publishes 80\/tcp on 10\.0\.0\.1, which overlaps entry 0 \(80\/tcp on every IPv4 host address\) on IPv4/);
  t.notThrows(() => parsePortMappings([{ hostPort: 80, containerPort: 80, hostIP: '::' }, { hostPort: 80, containerPort: 80, hostIP: '10.0.0.1' }]), 'different families');
  t.notThrows(() => parsePortMappings([{ hostPort: 80, containerPort: 80, hostIP: '10.0.0.2' }, { hostPort: 80, containerPort: 80, hostIP: '10.0.0.1' }]), 'two addresses');
  t.notThrows(() => parsePortMappings([{ hostPort: 80, containerPort: 80 }, { hostPort: 80, containerPort: 80, hostIP: '10.0.0.1', protocol: 'udp' }]), 'two protocols');
});

test('tetherd\'s "portsProxy" option: on by default, false turns it off, a bad value is a configuration error', async (t) => {
  const { portsProxyOptions } = await import('../../tetherd/ports-main.js');
  t.deepEqual(portsProxyOptions({}), { enabled: true, intervalMs: 1000 });
  t.deepEqual(portsProxyOptions({ portsProxy: false }), { enabled: false, intervalMs: 1000 });
  t.deepEqual(portsProxyOptions({ portsProxy: { intervalMs: 250 } }), { enabled: true, intervalMs: 250 });
  for (const bad of ['yes', 0, { intervalMs: 10 }, { intervalMs: 'x' }, []]) {
    t.throws(() => portsProxyOptions({ portsProxy: bad }), { message: /portsProxy/ }, JSON.stringify(bad));
  }
});
