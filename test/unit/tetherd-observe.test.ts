import test from 'ava';
import { AgentEvents, type AgentEvent } from '../../tetherd/events.js';
import { AgentConfigError } from '../../tetherd/config.js';
import { parseObserveConfig } from '../../tetherd/observe.js';

test('observe section: defaults, metrics off with null, every field checked', (t) => {
  t.deepEqual(parseObserveConfig({ pool: '10.244.0.0/16' }), { metricsAddress: '127.0.0.1:9310', healthFile: '/run/tether/tetherd.json', healthIntervalMs: 15_000, confDir: undefined, opLog: undefined });
  t.like(parseObserveConfig({ observe: { metricsAddress: null, healthFile: '/x/h.json', confDir: '/etc/cni/net.d', opLog: '/var/log/tether/cni.log', healthIntervalMs: 1000 } }),
    { metricsAddress: null, healthFile: '/x/h.json', confDir: '/etc/cni/net.d', opLog: '/var/log/tether/cni.log', healthIntervalMs: 1000 });
  t.is(parseObserveConfig({ observe: { metricsAddress: '[::1]:9999' } }).metricsAddress, '[::1]:9999');
  for (const [observe, field] of [
    [{ metricsAddress: 'localhost' }, 'observe.metricsAddress'],
    [{ metricsAddress: 9310 }, 'observe.metricsAddress'],
    [{ healthFile: 'relative.json' }, 'observe.healthFile'],
    [{ opLog: 3 }, 'observe.opLog'],
    [{ healthIntervalMs: 60_000 }, 'observe.healthIntervalMs'],
    [[], 'observe'],
  ] as const) {
    const e = t.throws(() => parseObserveConfig({ observe }), { instanceOf: AgentConfigError });
    t.true(e!.message.includes(`"${field}"`), e!.message);
  }
});

test('agent events reach every subscriber until it unsubscribes; a throwing subscriber never breaks the agent', (t) => {
  const events = new AgentEvents();
  const seen: AgentEvent[] = [];
  const off = events.on((e) => { seen.push(e); });
  const failing = events.on(() => { throw new Error('a broken observer'); });
  t.notThrows(() => events.emit({ kind: 'lease', result: 'ok' }));
  events.emit({ kind: 'watch', reason: 'broken' });
  off();
  failing();
  events.emit({ kind: 'error', code: 'after' });
  t.deepEqual(seen, [{ kind: 'lease', result: 'ok' }, { kind: 'watch', reason: 'broken' }]);
});
