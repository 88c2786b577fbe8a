import test from 'ava';
import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ConfigError, loadNetworkList, parseNetworkList, scanConfDir } from '../../lib/libcni/conf.js';

function dir(files: Record<string, unknown>): string {
  const d = mkdtempSync(join(tmpdir(), 'tether-conf-'));
  for (const [name, body] of Object.entries(files)) {
    mkdirSync(join(d, name, '..'), { recursive: true });
    writeFileSync(join(d, name), typeof body === 'string' ? body : JSON.stringify(body));
  }
  return d;
}

test('a .conflist wins over a .conf with the same name; lookup is by name', (t) => {
  const d = dir({
    '10-a.conf': { cniVersion: '1.0.0', name: 'net', type: 'from-conf' },
    '20-b.conflist': { cniVersion: '1.0.0', name: 'net', plugins: [{ type: 'from-list' }] },
    '30-c.conflist': { cniVersion: '1.0.0', name: 'other', plugins: [{ type: 'x' }] },
  });
  t.is(loadNetworkList(d, 'net').plugins[0].type, 'from-list');
  t.is(loadNetworkList(d, 'other').plugins[0].type, 'x');
});

test('a single-plugin .conf is up-converted to a list', (t) => {
  const d = dir({ '10-a.conf': { cniVersion: '0.4.0', name: 'solo', type: 'bridge', bridge: 'br9' } });
  const l = loadNetworkList(d, 'solo');
  t.is(l.cniVersion, '0.4.0');
  t.is(l.plugins.length, 1);
  t.is(l.plugins[0].bridge, 'br9');
  t.deepEqual(JSON.parse(l.bytes.toString()).plugins[0].type, 'bridge');
});

test('plugins in <dir>/<name>/*.conf are appended unless loadOnlyInlinedPlugins', (t) => {
  const d = dir({
    'a.conflist': { cniVersion: '1.1.0', name: 'n1', plugins: [{ type: 'first' }] },
    'b.conflist': { cniVersion: '1.1.0', name: 'n2', loadOnlyInlinedPlugins: 'TRUE', plugins: [{ type: 'first' }] },
    'n1/10-extra.conf': { type: 'second' },
    'n2/10-extra.conf': { type: 'second' },
  });
  t.deepEqual(loadNetworkList(d, 'n1').plugins.map((p) => p.type), ['first', 'second']);
  t.deepEqual(JSON.parse(loadNetworkList(d, 'n1').bytes.toString()).plugins.length, 2, 'cached bytes include appended plugins');
  t.deepEqual(loadNetworkList(d, 'n2').plugins.map((p) => p.type), ['first']);
});

test('disableCheck/disableGC accept booleans and "true"/"false" strings', (t) => {
  t.true(parseNetworkList(Buffer.from(JSON.stringify({ name: 'n', disableCheck: 'True', disableGC: true, plugins: [{ type: 'x' }] }))).disableCheck);
  t.false(parseNetworkList(Buffer.from(JSON.stringify({ name: 'n', disableCheck: 'false', plugins: [{ type: 'x' }] }))).disableCheck);
  t.throws(() => parseNetworkList(Buffer.from(JSON.stringify({ name: 'n', disableCheck: 'yes', plugins: [{ type: 'x' }] }))), { instanceOf: ConfigError, message: /disableCheck/ });
});

test('invalid lists are refused with the file and the field named', (t) => {
  const bad: [unknown, RegExp][] = [
    [{ plugins: [{ type: 'x' }] }, /"name" is required/],
    [{ name: 'a b', plugins: [{ type: 'x' }] }, /"name"/],
    [{ name: 'n', plugins: [] }, /non-empty/],
    [{ name: 'n', plugins: [{ bridge: 'x' }] }, /plugins\[0\] has no "type"/],
    [{ name: 'n', plugins: [{ type: '../evil' }] }, /plain name/],
    [{ name: 'n', loadOnlyInlinedPlugins: true }, /no "plugins"/],
    ['{"name": ', /not valid JSON/],
  ];
  for (const [body, re] of bad) {
    const e = t.throws(() => parseNetworkList(Buffer.from(typeof body === 'string' ? body : JSON.stringify(body)), '/etc/x.conflist'), { instanceOf: ConfigError });
    t.regex(e!.message, re);
    t.regex(e!.message, /^\/etc\/x\.conflist: /);
  }
});

test('scan reports unreadable files instead of hiding them; missing names list what exists', (t) => {
  const d = dir({ '1.conflist': '{oops', '2.conflist': { cniVersion: '1.0.0', name: 'good', plugins: [{ type: 'x' }] }, 'README.md': 'x' });
  const files = scanConfDir(d);
  t.is(files.length, 2);
  t.truthy(files[0].error);
  const e = t.throws(() => loadNetworkList(d, 'nope'), { instanceOf: ConfigError });
  t.regex(e!.message, /found: good/);
  t.regex(e!.message, /unreadable/);
});
