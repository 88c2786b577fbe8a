import test from 'ava';
import { formatResult, parseResult } from '../../lib/cni/result.js';
import { CniError } from '../../lib/cni/errors.js';
import type { Result } from '../../lib/cni/types.js';

const full: Result = {
  cniVersion: '1.1.0',
  interfaces: [
    { name: 'cni0', mac: '02:00:00:00:00:01', mtu: 1500 },
    { name: 'veth1', mac: '02:00:00:00:00:02' },
    { name: 'eth0', mac: '02:00:00:00:00:03', sandbox: '/run/netns/x', socketPath: '/s', pciID: '0000:04:00.5' },
  ],
  ips: [
    { address: '10.1.0.5/16', gateway: '10.1.0.1', interface: 2 },
    { address: 'fd00::5/64', gateway: 'fd00::1', interface: 0 },
  ],
  routes: [{ dst: '0.0.0.0/0', gw: '10.1.0.1', priority: 100, table: 100, scope: 0, mtu: 1400, advmss: 1360 }],
  dns: { nameservers: ['10.1.0.10'] },
};

test('1.1.0 keeps everything, including zero values (interface 0, scope 0)', (t) => {
  const out = formatResult(full, '1.1.0') as any;
  t.is(out.cniVersion, '1.1.0');
  t.is(out.ips[1].interface, 0);
  t.is(out.routes[0].scope, 0);
  t.is(out.interfaces[0].mtu, 1500);
  t.is(out.interfaces[2].pciID, '0000:04:00.5');
  t.false('version' in out.ips[0]);
});

test('1.0.0 drops the 1.1 additions', (t) => {
  const out = formatResult(full, '1.0.0') as any;
  t.false('mtu' in out.interfaces[0]);
  t.false('socketPath' in out.interfaces[2]);
  t.deepEqual(out.routes[0], { dst: '0.0.0.0/0', gw: '10.1.0.1' });
  t.false('version' in out.ips[0]);
});

for (const v of ['0.3.0', '0.3.1', '0.4.0']) {
  test(`${v} adds ips[].version and keeps only name/mac/sandbox interfaces`, (t) => {
    const out = formatResult(full, v) as any;
    t.is(out.cniVersion, v);
    t.is(out.ips[0].version, '4');
    t.is(out.ips[1].version, '6');
    t.deepEqual(Object.keys(out.interfaces[2]).sort(), ['mac', 'name', 'sandbox']);
    t.deepEqual(out.dns, { nameservers: ['10.1.0.10'] });
  });
}

test('round trip through every version keeps addresses, gateways, interface indexes and routes', (t) => {
  for (const v of ['0.3.0', '0.3.1', '0.4.0', '1.0.0', '1.1.0']) {
    const back = parseResult(formatResult(full, v), v);
    t.deepEqual(back.ips, full.ips, v);
    t.deepEqual(back.routes!.map((r) => [r.dst, r.gw]), [['0.0.0.0/0', '10.1.0.1']], v);
    t.is(back.cniVersion, v);
  }
});

test('empty lists and empty dns are omitted', (t) => {
  const out = formatResult({ cniVersion: '1.0.0', ips: [{ address: '10.0.0.2/24' }], interfaces: [], routes: [], dns: {} }, '1.0.0');
  t.deepEqual(out, { cniVersion: '1.0.0', ips: [{ address: '10.0.0.2/24' }] });
});

test('an IPAM (abbreviated) result without interfaces parses', (t) => {
  const r = parseResult({ cniVersion: '0.4.0', ips: [{ version: '4', address: '10.0.0.2/24', gateway: '10.0.0.1' }] }, '0.4.0');
  t.deepEqual(r.ips, [{ address: '10.0.0.2/24', gateway: '10.0.0.1' }]);
});

test('a result without cniVersion takes the config version', (t) => {
  t.is(parseResult({ ips: [{ address: '10.0.0.2/24' }] }, '1.0.0').cniVersion, '1.0.0');
});

test('invalid results name the field that is wrong', (t) => {
  const cases: [unknown, RegExp][] = [
    [{ cniVersion: '1.0.0', ips: [{ address: '10.0.0.300/24' }] }, /ips\[0\]\.address/],
    [{ cniVersion: '1.0.0', ips: [{ address: '10.0.0.3/24', gateway: 'nope' }] }, /ips\[0\]\.gateway/],
    [{ cniVersion: '1.0.0', interfaces: [{ name: 'a' }], ips: [{ address: '10.0.0.3/24', interface: 1 }] }, /ips\[0\]\.interface/],
    [{ cniVersion: '0.4.0', ips: [{ version: '6', address: '10.0.0.3/24' }] }, /ips\[0\]\.version/],
    [{ cniVersion: '1.0.0', routes: [{ dst: 'default' }] }, /routes\[0\]\.dst/],
    [{ cniVersion: '1.0.0', interfaces: [{ mac: 'x' }] }, /interfaces\[0\]\.name/],
    [{ cniVersion: '1.0.0', dns: { nameservers: 'x' } }, /dns\.nameservers/],
    [[1, 2], /JSON object/],
  ];
  for (const [raw, re] of cases) {
    const e = t.throws(() => parseResult(raw, '1.0.0'), { instanceOf: CniError });
    t.regex(e!.message, re);
  }
});

test('0.1/0.2 results are refused with code 1', (t) => {
  const e = t.throws(() => parseResult({ cniVersion: '0.2.0', ip4: { ip: '10.0.0.2/24' } }, '0.2.0'), { instanceOf: CniError });
  t.is(e!.code, 1);
});
