import test from 'ava';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Allocator } from '../../ipam/allocator.js';
import { parseIpamConfig, setCapacity, type IpamConfig } from '../../ipam/config.js';
import { CniError } from '../../lib/cni/errors.js';
import { formatIP, parseIP } from '../../lib/ip/addr.js';
import { FileKV } from '../../lib/store/file.js';
import type { NetConf } from '../../lib/cni/types.js';

const conf = (ipam: Record<string, unknown>, extra: Record<string, unknown> = {}): NetConf => ({ cniVersion: '1.0.0', name: 'net1', type: 'x', ipam: { type: 'tether-ipam', ...ipam }, ...extra });

function setup(ipam: Record<string, unknown>) {
  const cfg = parseIpamConfig(conf({ dataDir: mkdtempSync(join(tmpdir(), 'tether-ipam-')), ...ipam }));
  const kv = new FileKV(join(cfg.dataDir, cfg.network));
  return { cfg, kv, alloc: new Allocator(kv, cfg) };
}

test('config: host-local defaults (start .1 skipping the gateway, end before broadcast)', (t) => {
  const c = parseIpamConfig(conf({ ranges: [[{ subnet: '10.1.0.0/24' }], [{ subnet: 'fd01::/120' }]] }));
  t.is(formatIP(c.ranges[0][0].gateway), '10.1.0.1');
  t.is(formatIP(c.ranges[0][0].start), '10.1.0.1');
  t.is(formatIP(c.ranges[0][0].end), '10.1.0.254');
  t.is(formatIP(c.ranges[1][0].end), 'fd01::ff', 'IPv6 has no broadcast');
  t.is(setCapacity(c.ranges[0]), 253n);
  t.is(c.dataDir, '/var/lib/cni/tether/ipam');
});

test('config: legacy top-level subnet and runtimeConfig.ipRanges come first', (t) => {
  const c = parseIpamConfig(conf({ subnet: '10.2.0.0/24', ranges: [[{ subnet: '10.3.0.0/24' }]] }, { runtimeConfig: { ipRanges: [[{ subnet: '10.4.0.0/24' }]] } }));
  t.deepEqual(c.ranges.map((s) => formatIP(s[0].subnet.ip)), ['10.4.0.0', '10.2.0.0', '10.3.0.0']);
});

test('config: every mistake is code 7 naming the field', (t) => {
  const bad: [Record<string, unknown>, RegExp][] = [
    [{}, /"ipam.ranges" is required/],
    [{ ranges: [[{ subnet: '10.0.0.1/24' }]] }, /ipam.ranges\[0\]\[0\].subnet" has host bits set; the network address is 10.0.0.0\/24/],
    [{ ranges: [[{ subnet: '10.0.0.0/31' }]] }, /too small/],
    [{ ranges: [[{ subnet: 'nope' }]] }, /ipam.ranges\[0\]\[0\].subnet/],
    [{ ranges: [[{ subnet: '10.0.0.0/24', rangeStart: '10.0.1.5' }]] }, /rangeStart" must be inside 10.0.0.0\/24/],
    [{ ranges: [[{ subnet: '10.0.0.0/24', rangeStart: '10.0.0.9', rangeEnd: '10.0.0.5' }]] }, /must not be after rangeEnd/],
    [{ ranges: [[{ subnet: '10.0.0.0/24' }, { subnet: 'fd00::/64' }]] }, /mixes IPv4 and IPv6/],
    [{ ranges: [[{ subnet: '10.0.0.0/16' }], [{ subnet: '10.0.5.0/24' }]] }, /overlaps range set 0/],
    [{ ranges: [[{ subnet: '10.0.0.0/24' }]], exclude: ['x'] }, /ipam.exclude\[0\]/],
    [{ ranges: [[{ subnet: '10.0.0.0/24' }]], dataDir: 'relative' }, /ipam.dataDir" must be an absolute path/],
    [{ ranges: [[{ subnet: '10.0.0.0/24' }]], routes: [{ dst: 'x' }] }, /ipam.routes\[0\].dst/],
  ];
  for (const [ipam, re] of bad) {
    const e = t.throws(() => parseIpamConfig(conf(ipam)), { instanceOf: CniError });
    t.is(e!.code, 7);
    t.regex(e!.message, re);
  }
});

test('allocation is round robin, skips the gateway and excluded addresses, one per range set', async (t) => {
  const { alloc } = setup({ ranges: [[{ subnet: '10.9.0.0/29' }], [{ subnet: 'fd09::/125' }]], exclude: ['10.9.0.3'] });
  const a = await alloc.allocate({ containerID: 'a', ifname: 'eth0' });
  t.deepEqual(a.ips.map((i) => formatIP(i.ip)), ['10.9.0.2', 'fd09::2']);
  const b = await alloc.allocate({ containerID: 'b', ifname: 'eth0' });
  t.deepEqual(b.ips.map((i) => formatIP(i.ip)), ['10.9.0.4', 'fd09::3'], '10.9.0.3 is excluded');
  await alloc.release({ containerID: 'a', ifname: 'eth0' });
  const c = await alloc.allocate({ containerID: 'c', ifname: 'eth0' });
  t.is(formatIP(c.ips[0].ip), '10.9.0.5', 'a released address is not reused at once');
});

test('ADD for a handle that already holds addresses returns them (no leak on retry)', async (t) => {
  const { alloc } = setup({ ranges: [[{ subnet: '10.8.0.0/24' }]] });
  const first = await alloc.allocate({ containerID: 'a', ifname: 'eth0' });
  const again = await alloc.allocate({ containerID: 'a', ifname: 'eth0' });
  t.false(first.existing);
  t.true(again.existing);
  t.deepEqual(again.ips.map((i) => formatIP(i.ip)), first.ips.map((i) => formatIP(i.ip)));
  t.is((await alloc.list()).length, 1);
  t.deepEqual(await alloc.release({ containerID: 'a', ifname: 'eth0' }), ['10.8.0.2']);
  t.deepEqual(await alloc.release({ containerID: 'a', ifname: 'eth0' }), [], 'releasing twice is fine');
  t.deepEqual(await alloc.release({ containerID: 'never', ifname: 'eth0' }), []);
});

test('exhaustion is a clear error naming the range and counting the use', async (t) => {
  const { alloc } = setup({ ranges: [[{ subnet: '10.7.0.0/24', rangeStart: '10.7.0.10', rangeEnd: '10.7.0.11' }]] });
  await alloc.allocate({ containerID: 'a', ifname: 'eth0' });
  await alloc.allocate({ containerID: 'b', ifname: 'eth0' });
  const e = await t.throwsAsync(alloc.allocate({ containerID: 'c', ifname: 'eth0' }), { instanceOf: CniError });
  t.is(e!.code, 11);
  t.regex(e!.message, /no free address in range set 10\.7\.0\.10-10\.7\.0\.11 of network "net1": 2 of 2 in use/);
});

test('requested addresses: honoured, refused when taken, outside every range, or the gateway', async (t) => {
  const { alloc } = setup({ ranges: [[{ subnet: '10.6.0.0/24' }]] });
  const a = await alloc.allocate({ containerID: 'a', ifname: 'eth0' }, [parseIP('10.6.0.77')!]);
  t.is(formatIP(a.ips[0].ip), '10.6.0.77');
  await t.throwsAsync(alloc.allocate({ containerID: 'b', ifname: 'eth0' }, [parseIP('10.6.0.77')!]), { message: /already held by a\/eth0/ });
  await t.throwsAsync(alloc.allocate({ containerID: 'b', ifname: 'eth0' }, [parseIP('10.5.0.1')!]), { message: /in no range/ });
  await t.throwsAsync(alloc.allocate({ containerID: 'b', ifname: 'eth0' }, [parseIP('10.6.0.1')!]), { message: /is the gateway/ });
});

test('GC releases every attachment not in the valid set', async (t) => {
  const { alloc } = setup({ ranges: [[{ subnet: '10.5.0.0/24' }]] });
  for (const id of ['a', 'b', 'c']) await alloc.allocate({ containerID: id, ifname: 'eth0' });
  const released = await alloc.gc([{ containerID: 'b', ifname: 'eth0' }]);
  t.deepEqual(released.map((r) => r.containerID).sort(), ['a', 'c']);
  t.deepEqual((await alloc.list()).map((a) => a.containerID), ['b']);
});

test('concurrent allocations in one process never hand out an address twice', async (t) => {
  const { alloc } = setup({ ranges: [[{ subnet: '10.4.0.0/24' }]] });
  const got = await Promise.all(Array.from({ length: 40 }, (_, i) => alloc.allocate({ containerID: `c${i}`, ifname: 'eth0' })));
  const ips = got.map((g) => formatIP(g.ips[0].ip));
  t.is(new Set(ips).size, 40);
  t.is((await alloc.list()).length, 40);
});
