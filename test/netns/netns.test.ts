import test from 'ava';
import { existsSync, writeFileSync, readFileSync } from 'node:fs';
import { inNetns, isCurrentNetns, listNamedNetns, netnsInode, NetnsNotFoundError, createNamedNetns, deleteNamedNetns } from '../../lib/netns/netns.js';
import { sysctlGet, sysctlSet } from '../../lib/netns/sysctl.js';
import { Netlink } from '../../lib/netlink/handle.js';
import { runIn } from '../../conformance/spawn.js';
import { Namespaces } from '../helpers/netns.js';

const ns = new Namespaces();
test.after.always(() => ns.cleanup());

test('create, list, enter and delete a named namespace without exec', (t) => {
  const path = ns.add('a');
  t.true(existsSync(path));
  t.true(listNamedNetns().includes(`${ns.prefix}-a`));
  t.false(isCurrentNetns(path));
  t.true(inNetns(path, () => isCurrentNetns(path)));
  t.false(isCurrentNetns(path), 'back home after the callback');
  t.not(netnsInode(path), netnsInode('/proc/self/ns/net'));
  Netlink.within(path, (nl) => { t.deepEqual(nl.links().map((l) => l.name), ['lo'], 'a new namespace holds only lo'); });
  t.true(deleteNamedNetns(`${ns.prefix}-a`));
  t.false(existsSync(path));
  t.false(deleteNamedNetns(`${ns.prefix}-a`), 'deleting twice reports it was gone');
});

test('creating an existing name fails instead of reusing it', (t) => {
  ns.add('dup');
  t.throws(() => createNamedNetns(`${ns.prefix}-dup`), { code: 'EEXIST' } as any);
});

test('invalid names are refused', (t) => {
  t.throws(() => createNamedNetns('../x'), { message: /invalid namespace name/ });
});

test('a missing namespace is NetnsNotFoundError (what DEL treats as gone)', (t) => {
  t.throws(() => inNetns('/run/netns/does-not-exist-tether', () => 1), { instanceOf: NetnsNotFoundError });
});

test('the callback must be synchronous', (t) => {
  const path = ns.add('sync');
  t.throws(() => inNetns(path, () => Promise.resolve(1)), { message: /synchronous/ });
  t.false(isCurrentNetns(path));
});

test('an exception inside still returns the thread home', (t) => {
  const path = ns.add('throw');
  t.throws(() => inNetns(path, () => { throw new Error('inside'); }), { message: 'inside' });
  t.false(isCurrentNetns(path));
});

test('a file that is not a namespace gives a clear error', (t) => {
  const f = `/tmp/${ns.prefix}-not-a-netns`;
  writeFileSync(f, 'x');
  t.throws(() => inNetns(f, () => 1), { message: /is not a network namespace/ });
});

test('sysctl writes inside a namespace stay there', (t) => {
  const path = ns.add('sysctl');
  const hostValue = sysctlGet('net/ipv4/ip_forward');
  inNetns(path, () => {
    t.true(sysctlSet('net/ipv4/ip_forward', hostValue === '1' ? 0 : 1));
    t.false(sysctlSet('net/ipv4/ip_forward', hostValue === '1' ? 0 : 1), 'unchanged value is not rewritten');
  });
  t.is(sysctlGet('net/ipv4/ip_forward'), hostValue);
  t.is(inNetns(path, () => sysctlGet('net/ipv4/ip_forward')), hostValue === '1' ? '0' : '1');
  t.throws(() => sysctlGet('../../etc/passwd'));
});

test('a process spawned inside the window is born in the namespace', async (t) => {
  const path = ns.add('spawn');
  const out = await runIn(path, 'cat', ['/proc/self/net/dev']);
  t.is(out.status, 0);
  const devices = out.stdout.split('\n').slice(2).map((l) => l.split(':')[0].trim()).filter(Boolean);
  t.deepEqual(devices, ['lo']);
  t.not(readFileSync('/proc/self/net/dev', 'utf8'), out.stdout, 'we stayed home');
});

test.after.always('no namespace of this file is left', (t) => {
  ns.cleanup();
  t.deepEqual(ns.leftovers(), []);
});
