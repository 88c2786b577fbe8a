import test from 'ava';
import { buildContext } from '../../lib/cni/skel.js';
import { CniError, ErrorCode } from '../../lib/cni/errors.js';
import { readCmdArgs, readCommand, type Command } from '../../lib/cni/env.js';
import { parseCniArgs } from '../../lib/cni/args.js';
import { bridgePlugin } from '../../plugins/bridge/plugin.js';
import { ipamPlugin } from '../../ipam/plugin.js';
import { xorshift32 } from '../helpers/random.js';

// Hostile CNI_* environments, seeded so a failure replays: each one must end in success or a CniError
// with code 4 (bad environment) naming the variable, never another exception; and whatever is accepted
// must be safe to use as a file name component and an interface name.

const rng = xorshift32;

const NASTY = ['', '.', '..', '../..', '../../etc/passwd', '/', 'a/b', 'a:b', 'a b', ' ', '\t', '\n', '\x01', '\x1b[2J', '\x7f', 'é', '🙂',
  'x'.repeat(15), 'x'.repeat(16), 'x'.repeat(4096), '-lead', '_lead', 'ok.name-1_2', 'eth0', '%2e%2e', '\\', '*', '$(id)', '`id`', ';', '=', 'K=V;K2=V2', 'IgnoreUnknown=1;IP=10.0.0.5',
  'IP=not-an-ip', ';;;', '=;=', 'a=b=c', 'K=' + 'v'.repeat(10000)];

function value(r: () => number): string {
  const pick = <T>(xs: T[]) => xs[Math.floor(r() * xs.length)];
  let s = pick(NASTY);
  if (r() < 0.4) s += pick(NASTY);
  if (r() < 0.2) s = s.split('').map((c) => (r() < 0.1 ? String.fromCharCode(Math.floor(r() * 0x80)) : c)).join('');
  return s;
}

const conf = Buffer.from(JSON.stringify({ cniVersion: '1.1.0', name: 'fz', type: 'tether-bridge', bridge: 'fzbr0', ipam: { type: 'tether-ipam', dataDir: '/tmp/fz', ranges: [[{ subnet: '10.0.0.0/24' }]] } }));
const COMMANDS = ['ADD', 'DEL', 'CHECK', 'STATUS', 'GC', 'VERSION', 'add', 'BOGUS', ''];

test('10,000 hostile CNI_* environments: success or code 4 naming the variable, and accepted values are safe', (t) => {
  const r = rng(0xe7e7);
  let refused = 0;
  let accepted = 0;
  for (let i = 0; i < 10_000; i++) {
    const env: NodeJS.ProcessEnv = {
      CNI_COMMAND: COMMANDS[Math.floor(r() * COMMANDS.length)],
      CNI_CONTAINERID: r() < 0.3 ? `ctr${i}` : value(r),
      CNI_NETNS: r() < 0.3 ? '/run/netns/x' : value(r),
      CNI_IFNAME: r() < 0.3 ? 'eth0' : value(r),
      CNI_PATH: r() < 0.5 ? '/opt/cni/bin' : value(r),
      CNI_ARGS: value(r),
    };
    for (const k of Object.keys(env)) if (r() < 0.1) delete env[k];
    try {
      const command = readCommand(env);
      if (!command) { accepted++; continue; } // no command: the plugin prints what it is
      for (const spec of [bridgePlugin, ipamPlugin]) {
        const ctx = buildContext(spec as any, command as Command, env, conf);
        const a = ctx.args;
        if (['ADD', 'DEL', 'CHECK'].includes(command)) {
          if (!/^[a-zA-Z0-9][a-zA-Z0-9_.-]*$/.test(a.containerID)) t.fail(`case ${i}: accepted container ID ${JSON.stringify(a.containerID)}`);
          if (Buffer.byteLength(a.ifname) > 15 || /[/:\s\x00-\x1f\x7f]/.test(a.ifname) || a.ifname === '.' || a.ifname === '..') t.fail(`case ${i}: accepted interface name ${JSON.stringify(a.ifname)}`);
          if (a.netns && !a.netns.startsWith('/')) t.fail(`case ${i}: accepted relative CNI_NETNS ${JSON.stringify(a.netns)}`);
        }
      }
      accepted++;
    } catch (e) {
      if (!(e instanceof CniError)) { t.fail(`case ${i}: ${(e as Error).name}: ${(e as Error).message} for ${JSON.stringify(env).slice(0, 300)}`); continue; }
      if (e.code !== ErrorCode.InvalidEnvironment) t.fail(`case ${i}: code ${e.code} (${e.message}), expected 4`);
      if (!/CNI_[A-Z]+/.test(`${e.message} ${e.details}`)) t.fail(`case ${i}: the error names no variable: ${e.message}`);
      refused++;
    }
  }
  t.true(refused > 3000 && accepted > 500, `both outcomes are reached (${refused} refused, ${accepted} accepted)`);
});

test('10,000 hostile CNI_ARGS strings: key/value pairs (unknown keys kept), or code 4 for a part with no key', (t) => {
  const r = rng(0xa465);
  let refused = 0;
  for (let i = 0; i < 10_000; i++) {
    const s = Array.from({ length: 1 + Math.floor(r() * 4) }, () => value(r)).join(r() < 0.5 ? ';' : '');
    let pairs: [string, string][];
    try { pairs = parseCniArgs(s); } catch (e) {
      // As the reference skeleton: a part without KEY= is a broken runtime, not an unknown key.
      if (!(e instanceof CniError) || e.code !== ErrorCode.InvalidEnvironment || e.details !== 'CNI_ARGS') t.fail(`case ${i}: ${(e as Error).message} for ${JSON.stringify(s).slice(0, 200)}`);
      else if (!s.split(';').some((p) => p !== '' && p.indexOf('=') <= 0)) t.fail(`case ${i}: refused although every part has a key: ${JSON.stringify(s).slice(0, 200)}`);
      refused++;
      continue;
    }
    for (const [k, v] of pairs) {
      if (typeof k !== 'string' || typeof v !== 'string' || k === '' || k.includes(';') || k.includes('=')) t.fail(`case ${i}: bad pair ${JSON.stringify([k, v])}`);
    }
  }
  t.true(refused > 100 && refused < 9_900, `both outcomes are reached (${refused} refused)`);
});
