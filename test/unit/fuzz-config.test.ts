import test from 'ava';
import { buildContext } from '../../lib/cni/skel.js';
import { CniError } from '../../lib/cni/errors.js';
import { parseResult } from '../../lib/cni/result.js';
import { bridgePlugin } from '../../plugins/bridge/plugin.js';
import { ipamPlugin } from '../../ipam/plugin.js';
import { parseNetworkList, ConfigError } from '../../lib/libcni/conf.js';
import { xorshift32 } from '../helpers/random.js';

// Hostile configuration, seeded so a failure replays: every case must end in a CniError (or a
// ConfigError for cnictl) or in success, never in another exception (a crash with a stack trace).

const rng = xorshift32;

const base = {
  cniVersion: '1.1.0', name: 'fz', type: 'tether-bridge', bridge: 'fzbr0', isGateway: true, ipMasq: true, mtu: 1400,
  ipam: { type: 'tether-ipam', dataDir: '/tmp/fz', ranges: [[{ subnet: '10.0.0.0/24', rangeStart: '10.0.0.10', gateway: '10.0.0.1' }]], routes: [{ dst: '0.0.0.0/0' }], exclude: ['10.0.0.5'], blockSize: 26, etcd: { endpoints: ['http://127.0.0.1:2379'] } },
  prevResult: { cniVersion: '1.1.0', ips: [{ address: '10.0.0.2/24', interface: 0 }], interfaces: [{ name: 'eth0' }], routes: [{ dst: '0.0.0.0/0', gw: '10.0.0.1' }] },
};

function mutate(v: unknown, r: () => number, depth = 0): unknown {
  const pick = <T>(xs: T[]) => xs[Math.floor(r() * xs.length)];
  const weird = () => pick<unknown>([null, true, 0, -1, 1e308, -0, 2 ** 53 + 1, '', 'x'.repeat(300), '../../etc', '\u0000', '🙂', '10.0.0.0/99', '::', [], {}, [[]], { type: 1 }, NaN]);
  if (r() < 0.08) return weird();
  if (Array.isArray(v)) {
    const out = v.map((x) => (r() < 0.3 ? mutate(x, r, depth + 1) : x));
    if (r() < 0.1) out.push(weird());
    if (r() < 0.05 && depth < 6) out.push(mutate(v, r, depth + 1));
    return out;
  }
  if (v && typeof v === 'object') {
    const out: Record<string, unknown> = { ...(v as Record<string, unknown>) };
    for (const k of Object.keys(out)) {
      if (r() < 0.25) out[k] = mutate(out[k], r, depth + 1);
      else if (r() < 0.05) delete out[k];
    }
    if (r() < 0.05) out[pick(['cniVersion', 'name', 'type', 'ipam', 'ranges', 'subnet', 'mtu', 'vlan'])] = weird();
    return out;
  }
  return r() < 0.5 ? weird() : v;
}

const env = { CNI_COMMAND: 'ADD', CNI_CONTAINERID: 'c1', CNI_NETNS: '/run/netns/x', CNI_IFNAME: 'eth0', CNI_PATH: '/x' };

test('10,000 mangled plugin configs: a CniError or success, never a crash', (t) => {
  const r = rng(0x5eed);
  let errors = 0;
  for (let i = 0; i < 10_000; i++) {
    const conf = mutate(base, r);
    const raw = Buffer.from(JSON.stringify(conf) ?? 'null');
    for (const [spec, command] of [[bridgePlugin, 'ADD'], [ipamPlugin, 'DEL'], [bridgePlugin, 'CHECK']] as const) {
      try {
        buildContext(spec as any, command, { ...env, CNI_COMMAND: command }, raw);
      } catch (e) {
        if (!(e instanceof CniError)) t.fail(`case ${i} (${command}): ${(e as Error).name}: ${(e as Error).message}\n${raw.toString().slice(0, 400)}`);
        if (typeof (e as CniError).code !== 'number' || !(e as Error).message) t.fail(`case ${i}: malformed CniError`);
        errors++;
      }
    }
  }
  t.true(errors > 1000, `the mutations produced ${errors} errors: they do reach the checks`);
});

test('10,000 mangled results (prevResult, cache, delegate output): a CniError or success', (t) => {
  const r = rng(0xbeef);
  for (let i = 0; i < 10_000; i++) {
    const raw = mutate(base.prevResult, r);
    try { parseResult(raw, '1.1.0'); } catch (e) {
      if (!(e instanceof CniError)) t.fail(`case ${i}: ${(e as Error).name}: ${(e as Error).message}\n${JSON.stringify(raw)?.slice(0, 300)}`);
    }
  }
  t.pass();
});

test('10,000 mangled network lists for cnictl: a ConfigError or success', (t) => {
  const r = rng(0xcafe);
  const list = { cniVersion: '1.1.0', name: 'fz', disableCheck: false, plugins: [base, { type: 'portmap', capabilities: { portMappings: true } }] };
  for (let i = 0; i < 10_000; i++) {
    const raw = mutate(list, r);
    try { parseNetworkList(Buffer.from(JSON.stringify(raw) ?? 'null')); } catch (e) {
      if (!(e instanceof ConfigError)) t.fail(`case ${i}: ${(e as Error).name}: ${(e as Error).message}\n${JSON.stringify(raw)?.slice(0, 300)}`);
    }
  }
  t.pass();
});
