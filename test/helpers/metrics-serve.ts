import { Registry } from '../../lib/metrics.js';
import { serveMetrics } from '../../lib/metrics-http.js';

// Run as a child inside a test namespace: serves a registry on loopback, prints "ready <address>",
// counts each line read on stdin as one operation, and exits when stdin closes.
const registry = new Registry();
const ops = registry.counter('tether_test_operations_total', { help: 'Lines read on stdin.', labelNames: ['source'] });
const latency = registry.histogram('tether_test_latency_seconds', { help: 'Made-up latencies.', buckets: [0.01, 0.1, 1] });
registry.gauge('tether_test_up', { help: 'Always 1.' }).set(undefined, 1);
const m = await serveMetrics(registry, process.argv[2] ?? '127.0.0.1:0');
process.stdout.write(`ready ${m.address}\n`);
let buf = '';
process.stdin.on('data', (d) => {
  buf += d.toString();
  for (let i = buf.indexOf('\n'); i >= 0; i = buf.indexOf('\n')) {
    buf = buf.slice(i + 1);
    ops.inc({ source: 'stdin' });
    latency.observe(undefined, 0.05);
  }
  process.stdout.write(`counted ${ops.get({ source: 'stdin' })}\n`);
});
process.stdin.on('end', () => { void m.close().then(() => process.exit(0)); });
