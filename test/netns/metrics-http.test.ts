import test from 'ava';
import { fileURLToPath } from 'node:url';
import { runIn, startIn, stop, waitForLine } from '../../conformance/spawn.js';
import { Netlink } from '../../lib/netlink/handle.js';
import { Namespaces } from '../helpers/netns.js';

// The metrics endpoint scraped over loopback, inside a namespace of the test's own: the server is one
// process, each scrape another, as Prometheus would be.
const ns = new Namespaces('top');
test.after.always(() => ns.cleanup());
const serve = fileURLToPath(new URL('../helpers/metrics-serve.js', import.meta.url));

const scrapeScript = `const [url, method] = process.argv.slice(1);
fetch(url, { method }).then(async (r) => console.log(JSON.stringify({ status: r.status, type: r.headers.get('content-type'), body: await r.text() })), (e) => { console.error(e.message); process.exit(1); });`;

test('GET /metrics over loopback serves the 0.0.4 text format and follows the registry', async (t) => {
  const path = ns.add('m');
  Netlink.within(path, (nl) => { nl.linkSet(nl.linkByName('lo')!.index, { up: true }); });
  const server = startIn(path, process.execPath, [serve, '127.0.0.1:0']);
  try {
    const address = (await waitForLine(server, 'ready', 10_000)).split(' ')[1];
    t.regex(address, /^127\.0\.0\.1:\d+$/);
    const scrape = async (p: string, method = 'GET') => {
      const r = await runIn(path, process.execPath, ['-e', scrapeScript, `http://${address}${p}`, method], 10_000);
      t.is(r.status, 0, r.stderr);
      return JSON.parse(r.stdout) as { status: number; type: string; body: string };
    };
    const first = await scrape('/metrics');
    t.is(first.status, 200);
    t.is(first.type, 'text/plain; version=0.0.4; charset=utf-8');
    t.regex(first.body, /^# TYPE tether_test_up gauge\ntether_test_up 1$/m);
    t.notRegex(first.body, /tether_test_operations_total\{/, 'no labelled series before the first operation');
    // Every non-comment line is `name{labels} value`.
    for (const line of first.body.trimEnd().split('\n').filter((l) => !l.startsWith('#'))) t.regex(line, /^[a-zA-Z_:][\w:]*(\{[^}]*\})? \S+$/, line);

    server.stdin!.write('one\ntwo\n');
    await waitForLine(server, 'counted 2', 10_000);
    const second = await scrape('/metrics');
    t.regex(second.body, /^tether_test_operations_total\{source="stdin"\} 2$/m);
    t.regex(second.body, /^tether_test_latency_seconds_bucket\{le="0\.1"\} 2$/m);
    t.regex(second.body, /^tether_test_latency_seconds_count 2$/m);

    t.like(await scrape('/healthz'), { status: 200, body: 'ok\n' });
    t.is((await scrape('/nope')).status, 404);
    t.is((await scrape('/metrics', 'POST')).status, 405);
  } finally {
    server.stdin!.end();
    stop(server);
  }
});
