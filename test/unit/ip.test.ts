import test from 'ava';
import { Address4, Address6 } from 'ip-address';
import {
  addToIP, bigIntToIP, cidrContains, cidrSize, cidrsOverlap, compareIP, formatCIDR, formatIP, hostBitsZero, ipEqual,
  ipFromBytes, ipToBigInt, isIPv4Mapped, isLinkLocal, isUnspecified, lastOf, maskBytes, networkCIDR, networkOf,
  parseCIDR, parseIP, prefixFromMask, toIPv4, type Family,
} from '../../lib/ip/addr.js';
import { formatMAC, isValidUnicastMAC, parseMAC, randomLocalMAC } from '../../lib/ip/mac.js';

const ip = (s: string) => parseIP(s)!;
const cidr = (s: string) => parseCIDR(s)!;

test('IPv4 parsing is strict', (t) => {
  t.deepEqual([...ip('10.1.2.3').bytes], [10, 1, 2, 3]);
  t.is(ip('0.0.0.0').family, 4);
  for (const bad of ['10.1.2', '10.1.2.3.4', '256.1.1.1', '01.1.1.1', '1.1.1.1 ', '1..1.1', '', 'a.b.c.d', '1.1.1.-1', '1e1.1.1.1']) {
    t.is(parseIP(bad), null, bad);
  }
});

test('IPv6 parsing: compressed forms, embedded IPv4, and what is refused', (t) => {
  t.is(formatIP(ip('::')), '::');
  t.is(formatIP(ip('::1')), '::1');
  t.is(formatIP(ip('1::')), '1::');
  t.is(formatIP(ip('::ffff:1.2.3.4')), '::ffff:1.2.3.4');
  t.true(isIPv4Mapped(ip('::ffff:1.2.3.4')));
  t.is(ip('::ffff:1.2.3.4').family, 6);
  t.is(formatIP(ip('64:ff9b::1.2.3.4')), '64:ff9b::102:304');
  t.is(formatIP(ip('FD00::ABCD')), 'fd00::abcd');
  for (const bad of ['1::2::3', '1:2:3:4:5:6:7:8:9', '12345::', 'fe80::1%eth0', ':1', '1:', 'g::', '1:2:3:4:5:6:7', '1.2.3.4::', '::1.2.3', '1:2:3:4:5:6:7::8']) {
    t.is(parseIP(bad), null, bad);
  }
  t.truthy(parseIP('1:2:3:4:5:6:7::'), 'seven groups and "::" is eight');
});

test('RFC 5952 canonical text', (t) => {
  t.is(formatIP(ip('2001:db8:0:0:1:0:0:1')), '2001:db8::1:0:0:1', 'first of two equal runs');
  t.is(formatIP(ip('2001:0db8::0001')), '2001:db8::1');
  t.is(formatIP(ip('2001:db8:0:1:1:1:1:1')), '2001:db8:0:1:1:1:1:1', 'a single zero group is not compressed');
  t.is(formatIP(ip('2001:db8:0:0:0:1:0:0')), '2001:db8::1:0:0', 'longest run wins');
  t.is(formatIP(ip('0:0:0:0:0:0:0:0')), '::');
});

test('CIDR parsing, network, last address, containment, overlap, size', (t) => {
  const c = cidr('10.0.0.5/24');
  t.is(formatIP(c.ip), '10.0.0.5', 'the address is kept as written');
  t.is(formatIP(networkOf(c)), '10.0.0.0');
  t.is(formatIP(lastOf(c)), '10.0.0.255');
  t.is(formatCIDR(networkCIDR(c)), '10.0.0.0/24');
  t.false(hostBitsZero(c));
  t.true(hostBitsZero(cidr('10.0.0.0/24')));
  t.true(cidrContains(c, ip('10.0.0.200')));
  t.false(cidrContains(c, ip('10.0.1.1')));
  t.false(cidrContains(c, ip('::1')), 'family mismatch');
  t.true(cidrsOverlap(cidr('10.0.0.0/16'), cidr('10.0.5.0/24')));
  t.false(cidrsOverlap(cidr('10.0.0.0/24'), cidr('10.0.1.0/24')));
  t.is(cidrSize(cidr('10.0.0.0/24')), 256n);
  t.is(cidrSize(cidr('::/0')), 1n << 128n);
  t.true(cidrContains(cidr('0.0.0.0/0'), ip('255.255.255.255')));
  t.is(formatIP(lastOf(cidr('fd00::/64'))), 'fd00::ffff:ffff:ffff:ffff');
  t.is(formatIP(networkOf(cidr('10.1.2.3/32'))), '10.1.2.3');
  for (const bad of ['10.0.0.0', '10.0.0.0/33', '::/129', '10.0.0.0/08', '10.0.0.0/', '/24', 'x/1']) t.is(parseCIDR(bad), null, bad);
});

test('arithmetic: add, overflow, bigint round trip, compare', (t) => {
  t.is(formatIP(addToIP(ip('10.0.0.255'), 1)!), '10.0.1.0');
  t.is(addToIP(ip('255.255.255.255'), 1), null);
  t.is(addToIP(ip('0.0.0.0'), -1), null);
  t.is(formatIP(addToIP(ip('fd00::ffff'), 1n)!), 'fd00::1:0');
  t.is(addToIP(ip('ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff'), 1), null);
  t.is(ipToBigInt(ip('0.0.1.0')), 256n);
  t.true(ipEqual(bigIntToIP(256n, 4), ip('0.0.1.0')));
  t.throws(() => bigIntToIP(1n << 32n, 4), { instanceOf: RangeError });
  t.true(compareIP(ip('10.0.0.1'), ip('10.0.0.2')) < 0);
  t.true(compareIP(ip('10.0.0.1'), ip('::1')) < 0, 'v4 sorts before v6');
  t.is(compareIP(ip('fd00::1'), ip('fd00:0::1')), 0);
});

test('masks, byte conversions and predicates', (t) => {
  t.deepEqual([...maskBytes(4, 20)], [255, 255, 240, 0]);
  t.is(prefixFromMask(Uint8Array.from([255, 255, 240, 0])), 20);
  t.is(prefixFromMask(Uint8Array.from([255, 0, 255, 0])), null);
  t.is(ipFromBytes(new Uint8Array(16)).family, 6);
  t.throws(() => ipFromBytes(new Uint8Array(5)), { instanceOf: RangeError });
  t.is(formatIP(toIPv4(ip('::ffff:10.0.0.1'))!), '10.0.0.1');
  t.is(toIPv4(ip('fd00::1')), null);
  t.true(isLinkLocal(ip('169.254.1.1')));
  t.true(isLinkLocal(ip('fe80::1')));
  t.false(isLinkLocal(ip('fec0::1')));
  t.true(isUnspecified(ip('::')));
  t.false(isUnspecified(ip('::1')));
});

test('MAC addresses', (t) => {
  t.is(formatMAC(parseMAC('AA-bb-CC-dd-EE-ff')!), 'aa:bb:cc:dd:ee:ff');
  t.is(parseMAC('aa:bb:cc:dd:ee'), null);
  t.is(parseMAC('aa:bb:cc:dd:ee:fg'), null);
  t.is(formatMAC(new Uint8Array(20)).split(':').length, 20);
  t.false(isValidUnicastMAC(parseMAC('01:00:5e:00:00:01')!));
  t.false(isValidUnicastMAC(new Uint8Array(6)));
  for (let i = 0; i < 50; i++) {
    const m = randomLocalMAC();
    t.true(isValidUnicastMAC(m));
    t.is(m[0] & 0x02, 0x02, 'locally administered');
  }
});

/** xorshift32: deterministic, so a failure replays with the same seed. */
function rng(seed: number) {
  let x = seed >>> 0 || 1;
  return () => { x ^= x << 13; x >>>= 0; x ^= x >>> 17; x ^= x << 5; x >>>= 0; return x; };
}

test('oracle: 3000 random addresses and prefixes agree with the ip-address package', (t) => {
  const next = rng(0x7e7e7e);
  for (let i = 0; i < 3000; i++) {
    const family: Family = i % 2 ? 6 : 4;
    const bytes = new Uint8Array(family === 4 ? 4 : 16);
    for (let j = 0; j < bytes.length; j++) {
      // Bias towards zero groups so compression paths are exercised.
      bytes[j] = next() % 3 === 0 ? 0 : next() & 0xff;
    }
    const a = ipFromBytes(bytes);
    const prefix = next() % (family === 4 ? 33 : 129);
    const text = formatIP(a);
    const oracle = family === 4 ? new Address4(`${text}/${prefix}`) : new Address6(`${text}/${prefix}`);
    if (family === 6 && !isIPv4Mapped(a)) t.is(text, (oracle as Address6).correctForm(), `format ${text}`);
    t.is(ipToBigInt(a), oracle.bigInt(), `value ${text}`);
    const c = { ip: a, prefix };
    t.is(ipToBigInt(networkOf(c)), oracle.startAddress().bigInt(), `network ${text}/${prefix}`);
    t.is(ipToBigInt(lastOf(c)), oracle.endAddress().bigInt(), `last ${text}/${prefix}`);
    t.true(ipEqual(parseIP(text)!, a), `round trip ${text}`);
    const probe = ipFromBytes(bytes.map((b) => b ^ (next() & 1)));
    const probeOracle = family === 4 ? new Address4(formatIP(probe)) : new Address6(formatIP(probe));
    t.is(cidrContains(c, probe), (probeOracle as any).isInSubnet(oracle), `contains ${formatIP(probe)} in ${text}/${prefix}`);
  }
});
