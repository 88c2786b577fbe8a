import test from 'ava';
import { formatValue, MetricError, Registry } from '../../lib/metrics.js';
import { parseListenAddress } from '../../lib/metrics-http.js';

test('counter and gauge in the 0.0.4 text format, labelled and not', async (t) => {
  const r = new Registry();
  const c = r.counter('tether_ops_total', { help: 'Operations.', labelNames: ['command', 'result'] });
  c.inc({ command: 'ADD', result: 'ok' });
  c.inc({ command: 'ADD', result: 'ok' }, 2);
  c.inc({ result: 'error', command: 'DEL' });
  r.gauge('tether_up', { help: 'Agent up.' });
  const g = r.gauge('tether_leases', { help: 'Leases.', labelNames: ['state'] });
  g.set({ state: 'held' }, 3);
  g.dec({ state: 'held' });
  t.is(await r.expose(), [
    '# HELP tether_ops_total Operations.',
    '# TYPE tether_ops_total counter',
    'tether_ops_total{command="ADD",result="ok"} 3',
    'tether_ops_total{command="DEL",result="error"} 1',
    '# HELP tether_up Agent up.',
    '# TYPE tether_up gauge',
    'tether_up 0',
    '# HELP tether_leases Leases.',
    '# TYPE tether_leases gauge',
    'tether_leases{state="held"} 2',
    '',
  ].join('\n'));
});

test('histogram: cumulative buckets, +Inf, _sum and _count per label set', async (t) => {
  const r = new Registry();
  const h = r.histogram('tether_op_seconds', { help: 'Latency.', labelNames: ['op'], buckets: [0.01, 0.1, 1] });
  for (const v of [0.005, 0.01, 0.05, 0.5, 3]) h.observe({ op: 'add' }, v);
  t.is(await r.expose(), [
    '# HELP tether_op_seconds Latency.',
    '# TYPE tether_op_seconds histogram',
    'tether_op_seconds_bucket{op="add",le="0.01"} 2',
    'tether_op_seconds_bucket{op="add",le="0.1"} 3',
    'tether_op_seconds_bucket{op="add",le="1"} 4',
    'tether_op_seconds_bucket{op="add",le="+Inf"} 5',
    'tether_op_seconds_sum{op="add"} 3.565',
    'tether_op_seconds_count{op="add"} 5',
    '',
  ].join('\n'));
  const u = new Registry().histogram('x_seconds', { help: 'h', buckets: [1] });
  await u.time(undefined, async () => {});
  await t.throwsAsync(u.time(undefined, () => { throw new Error('boom'); }), { message: 'boom' });
  t.regex(u.expose(), /^x_seconds_count 2$/m, 'timed also when fn throws');
});

test('escaping of label values and help; special values', async (t) => {
  const r = new Registry();
  r.gauge('g', { help: 'line one\nback\\slash', labelNames: ['peer'] }).set({ peer: 'a"b\\c\nd' }, Infinity);
  t.is(await r.expose(), '# HELP g line one\\nback\\\\slash\n# TYPE g gauge\ng{peer="a\\"b\\\\c\\nd"} +Inf\n');
  t.deepEqual([NaN, -Infinity, 1e-7, 12, 0.25].map(formatValue), ['NaN', '-Inf', '1e-7', '12', '0.25']);
});

test('mistakes are errors, not silently wrong output', (t) => {
  const r = new Registry();
  t.throws(() => r.counter('bad-name', { help: '' }), { instanceOf: MetricError });
  t.throws(() => r.counter('x', { help: '', labelNames: ['__x'] }), { message: /invalid label name/ });
  t.throws(() => r.histogram('h', { help: '', labelNames: ['le'] }), { message: /reserved/ });
  t.throws(() => r.histogram('h2', { help: '', buckets: [1, 1] }), { message: /strictly increasing/ });
  const c = r.counter('c_total', { help: '', labelNames: ['a'] });
  t.throws(() => c.inc({}), { message: /missing a/ });
  t.throws(() => c.inc({ a: '1', b: '2' }), { message: /unknown b/ });
  t.throws(() => c.inc({ a: '1' }, -1), { message: /only goes up/ });
  t.throws(() => r.counter('c_total', { help: '' }), { message: /already registered/ });
});

test('remove() drops a series; collectors run before each exposition and a failing one is counted', async (t) => {
  const r = new Registry();
  const g = r.gauge('tether_bgp_session_up', { help: 'Per peer.', labelNames: ['peer'] });
  g.set({ peer: '198.18.0.2' }, 1);
  g.set({ peer: '198.18.0.3' }, 0);
  g.remove({ peer: '198.18.0.3' });
  let n = 0;
  const leases = r.gauge('tether_leases', { help: 'From the store.' });
  r.collect(() => { leases.set(undefined, ++n); });
  r.collect(() => { throw new Error('store down'); });
  const text = await r.expose();
  t.notRegex(text, /198\.18\.0\.3/);
  t.regex(text, /^tether_leases 1$/m);
  t.regex(text, /^tether_metrics_collector_errors_total 1$/m);
  t.regex(await r.expose(), /^tether_leases 2$/m);
});

test('listen addresses', (t) => {
  t.deepEqual(parseListenAddress('127.0.0.1:9310'), { host: '127.0.0.1', port: 9310 });
  t.deepEqual(parseListenAddress('[::1]:9310'), { host: '::1', port: 9310 });
  t.deepEqual(parseListenAddress(':9310'), { host: undefined, port: 9310 });
  for (const bad of ['9310', '127.0.0.1', 'host:99999', '[::1]9310']) t.throws(() => parseListenAddress(bad), { message: /metrics address/ }, bad);
});
