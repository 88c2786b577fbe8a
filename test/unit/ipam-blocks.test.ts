import test from 'ava';
import { blockKey, blockOfIP, blockPrefix, blocksOf, emptyBlock, freeOffset, inSet, recordCidr, usable } from '../../ipam/blocks.js';
import { parseRange } from '../../ipam/config.js';
import { formatCIDR, parseCIDR, parseIP } from '../../lib/ip/addr.js';

const sizes = { v4: 26, v6: 122 };
const range = (o: Record<string, string>) => parseRange(o, 'r');

test('blocks never exceed their subnet and cover only the allocatable span', (t) => {
  t.is(blockPrefix(range({ subnet: '10.0.0.0/28' }), sizes), 28, 'a /28 subnet is one block');
  t.is(blockPrefix(range({ subnet: '10.0.0.0/16' }), sizes), 26);
  t.is(blockPrefix(range({ subnet: 'fd00::/64' }), sizes), 122);
  const r = range({ subnet: '10.1.0.0/24', rangeStart: '10.1.0.100', rangeEnd: '10.1.0.140' });
  t.deepEqual([...blocksOf([r], sizes)].map((b) => formatCIDR(b.cidr)), ['10.1.0.64/26', '10.1.0.128/26']);
  t.is([...blocksOf([range({ subnet: '10.2.0.0/24' })], sizes)].length, 4);
});

test('an IPv6 /64 yields blocks lazily (2^58 of them could never be listed)', (t) => {
  const it = blocksOf([range({ subnet: 'fd00::/64' })], sizes);
  t.is(formatCIDR(it.next().value!.cidr), 'fd00::/122');
  t.is(formatCIDR(it.next().value!.cidr), 'fd00::40/122');
});

test('the block of an address, and no block outside the range', (t) => {
  const set = [range({ subnet: '10.3.0.0/24', rangeEnd: '10.3.0.200' })];
  t.is(formatCIDR(blockOfIP(set, parseIP('10.3.0.77')!, sizes)!.cidr), '10.3.0.64/26');
  t.is(blockOfIP(set, parseIP('10.3.0.201')!, sizes), undefined);
  t.is(blockOfIP(set, parseIP('10.4.0.1')!, sizes), undefined);
  t.is(blockKey(parseCIDR('10.3.0.64/26')!), 'block/10.3.0.64-26');
});

test('usable offsets skip the gateway, the broadcast, excluded addresses and anything outside the range', (t) => {
  const r = range({ subnet: '10.5.0.0/26' });
  const [b] = [...blocksOf([r], sizes)];
  t.false(usable(b, 0, []), 'network address (below rangeStart)');
  t.false(usable(b, 1, []), 'gateway');
  t.true(usable(b, 2, []));
  t.false(usable(b, 63, []), 'broadcast (after rangeEnd)');
  t.false(usable(b, 7, [parseCIDR('10.5.0.4/30')!]), 'excluded');
  const rec = emptyBlock(b, 'n1');
  t.is(rec.allocations.length, 64);
  t.is(freeOffset(b, rec, []), 2);
  rec.next = 62;
  t.is(freeOffset(b, rec, []), 62);
  rec.allocations[62] = 'x/eth0';
  t.is(freeOffset(b, rec, []), 2, 'wraps around past the end');
});

test('a stored block maps back to its CIDR and range set', (t) => {
  const r = range({ subnet: '10.6.0.0/24' });
  const rec = emptyBlock([...blocksOf([r], sizes)][1], 'n1');
  t.is(formatCIDR(recordCidr(rec)), '10.6.0.64/26');
  t.truthy(inSet([r], recordCidr(rec)));
  t.is(inSet([range({ subnet: '10.7.0.0/24' })], recordCidr(rec)), undefined);
});
