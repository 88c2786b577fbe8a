import test from 'ava';
import { CniError } from '../../lib/cni/errors.js';
import { buildContext } from '../../lib/cni/skel.js';
import type { NetConf } from '../../lib/cni/types.js';
import { formatCIDR, formatIP } from '../../lib/ip/addr.js';
import { formatMAC } from '../../lib/ip/mac.js';
import * as C from '../../lib/netlink/constants.js';
import { parseBgpRouteConf } from '../../plugins/bgp-route/config.js';
import { GATEWAY_V6, HOST_MAC, eui64LinkLocal, planL3 } from '../../plugins/bgp-route/plan.js';
import { bgpRoutePlugin } from '../../plugins/bgp-route/plugin.js';
import { hostVethName } from '../../plugins/common/names.js';

const conf = (extra: Record<string, unknown> = {}): NetConf => ({ cniVersion: '1.1.0', name: 'n', type: 'tether-bgp-route', ipam: { type: 'tether-ipam' }, ...extra });

test('the IPv6 gateway is the EUI-64 link-local of ee:ee:ee:ee:ee:ee, as the kernel derives it', (t) => {
  t.is(formatMAC(HOST_MAC), 'ee:ee:ee:ee:ee:ee');
  t.is(formatIP(GATEWAY_V6), 'fe80::ecee:eeff:feee:eeee');
  t.is(formatIP(eui64LinkLocal(Uint8Array.from([0x02, 0x42, 0xac, 0x11, 0x00, 0x02]))), 'fe80::42:acff:fe11:2');
});

test('plan, dual stack: host-prefix addresses, on-link route to 169.254.1.1 first, a default per family, static gateway entries', (t) => {
  const p = planL3({ cniVersion: '1.1.0', ips: [{ address: '10.1.2.3/16', gateway: '10.1.0.1' }, { address: 'fd00::5/64', gateway: 'fd00::1' }] });
  t.deepEqual(p.addresses.map(formatCIDR), ['10.1.2.3/32', 'fd00::5/128']);
  t.deepEqual([...p.families], [4, 6]);
  const routes = p.containerRoutes.map((r) => `${r.dst ? formatCIDR(r.dst) : 'default'}${r.gateway ? ` via ${formatIP(r.gateway)}` : ''}${r.scope === C.RT_SCOPE_LINK ? ' scope link' : ''}`);
  t.deepEqual(routes, ['169.254.1.1/32 scope link', 'default via 169.254.1.1', 'default via fe80::ecee:eeff:feee:eeee']);
  t.deepEqual(p.containerNeighbors.map((n) => `${formatIP(n.ip)} ${formatMAC(n.mac)}`), ['169.254.1.1 ee:ee:ee:ee:ee:ee', 'fe80::ecee:eeff:feee:eeee ee:ee:ee:ee:ee:ee']);
  t.deepEqual(p.resultRoutes, [{ dst: '0.0.0.0/0', gw: '169.254.1.1' }, { dst: '::/0', gw: 'fe80::ecee:eeff:feee:eeee' }]);
});

test('plan: IPAM routes go through the L3 gateway unless they name one; a default from IPAM is not doubled; other families are skipped', (t) => {
  const p = planL3({
    cniVersion: '1.1.0', ips: [{ address: '10.1.2.3/16' }],
    routes: [{ dst: '10.99.0.0/16' }, { dst: '10.98.0.0/16', gw: '10.1.0.254' }, { dst: '0.0.0.0/0' }, { dst: 'fd99::/64' }],
  });
  t.deepEqual(p.resultRoutes, [{ dst: '10.99.0.0/16', gw: '169.254.1.1' }, { dst: '10.98.0.0/16', gw: '10.1.0.254' }, { dst: '0.0.0.0/0', gw: '169.254.1.1' }]);
  t.deepEqual([...p.families], [4]);
  t.is(p.containerNeighbors.length, 1);
});

test('host veth names: the plugin prefix, 15 bytes, stable, distinct from tether-bridge\'s', (t) => {
  const a = hostVethName('ctr1', 'eth0', 'tgr');
  t.regex(a, /^tgr[0-9a-f]{12}$/);
  t.is(a, hostVethName('ctr1', 'eth0', 'tgr'));
  t.not(a, hostVethName('ctr1', 'eth1', 'tgr'));
  t.regex(hostVethName('ctr1', 'eth0'), /^veth[0-9a-f]{11}$/);
  t.throws(() => hostVethName('c', 'eth0', 'toolongprefix'));
});

test('config: code 7 naming the field, code 2 for bridge options and ipMasq; DEL and GC accept anything', (t) => {
  const cases: [Record<string, unknown>, number, RegExp][] = [
    [{ ipam: undefined }, 7, /"ipam" is required/],
    [{ ipam: {} }, 7, /"ipam" is required/],
    [{ ipam: 'tether-ipam' }, 7, /"ipam" must be an object/],
    [{ ipam: { ranges: [] } }, 7, /"ipam.type" is required/],
    [{ mtu: 67 }, 7, /"mtu"/], [{ mtu: 1.5 }, 7, /"mtu"/], [{ mtu: '1400' }, 7, /"mtu"/],
    [{ ipMasq: true }, 2, /"ipMasq"/],
    [{ bridge: 'cni0' }, 2, /"bridge"/], [{ hairpinMode: true }, 2, /"hairpinMode"/], [{ isDefaultGateway: true }, 2, /"isDefaultGateway"/],
    [{ dns: [] }, 7, /"dns"/],
    [{ internal: true }, 2, /"internal"/], [{ icc: false }, 2, /"icc"/],
    [{ isolation: 'yes' }, 7, /"isolation"/], [{ allowNetworks: 'n2' }, 7, /"allowNetworks"/], [{ allowNetworks: [''] }, 7, /"allowNetworks"/],
    [{ allowBridges: ['x'.repeat(16)] }, 7, /"allowBridges"/],
  ];
  for (const [extra, code, re] of cases) {
    const e = t.throws(() => parseBgpRouteConf(conf(extra), 'ADD'), { instanceOf: CniError }, JSON.stringify(extra));
    t.is(e!.code, code, e!.message);
    t.regex(e!.message, re);
    t.notThrows(() => parseBgpRouteConf(conf(extra), 'DEL'));
    t.notThrows(() => parseBgpRouteConf(conf(extra), 'GC'));
  }
  t.is(parseBgpRouteConf(conf({ mtu: 1400 }), 'ADD').mtu, 1400);
  t.is(parseBgpRouteConf(conf({ mtu: 0 }), 'ADD').mtu, undefined);
  t.notThrows(() => parseBgpRouteConf(conf({ bridge: false, ipMasq: false }), 'CHECK'));
  const iso = parseBgpRouteConf(conf({ allowNetworks: ['n2'], allowBridges: ['cni0'] }), 'ADD');
  t.deepEqual([iso.isolation, iso.allowNetworks, iso.allowBridges], ['network', ['n2'], ['cni0']]);
  t.is(parseBgpRouteConf(conf({ isolation: 'none' }), 'ADD').isolation, 'none');
});

test('hostile values in every field end in a CniError or success, never a crash', (t) => {
  const env = { CNI_COMMAND: 'ADD', CNI_CONTAINERID: 'c1', CNI_NETNS: '/run/netns/x', CNI_IFNAME: 'eth0', CNI_PATH: '/x' };
  const weird: unknown[] = [null, true, 0, -1, 1e308, '', 'x'.repeat(300), '\u0000', [], {}, [[]], { type: 1 }];
  let n = 0;
  let refused = 0;
  for (const field of ['mtu', 'ipam', 'dns', 'ipMasq', 'bridge', 'runtimeConfig', 'args', 'prevResult']) {
    for (const v of weird) {
      for (const command of ['ADD', 'DEL', 'CHECK'] as const) {
        const raw = Buffer.from(JSON.stringify({ ...conf({ ipam: { type: 'tether-ipam', ranges: [[{ subnet: '10.0.0.0/24' }]] } }), [field]: v }));
        try { buildContext(bgpRoutePlugin, command, { ...env, CNI_COMMAND: command }, raw); } catch (e) {
          if (!(e instanceof CniError)) t.fail(`${field}=${JSON.stringify(v)} (${command}): ${(e as Error).name}: ${(e as Error).message}`);
          refused++;
        }
        n++;
      }
    }
  }
  t.is(n, 8 * weird.length * 3);
  t.true(refused > 0 && refused < n, `${refused} of ${n} refused: some values are fine, some are not`);
});
