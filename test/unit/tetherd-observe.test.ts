import test from 'ava';
import { createLogger, tapLogs } from '../../lib/log.js';
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

test('tapLogs sees every line of every logger in the process, below the level too, until removed', (t) => {
  const seen: string[] = [];
  const untap = tapLogs((component, level, msg, fields) => { seen.push(`${component} ${level} ${msg} ${JSON.stringify(fields ?? {})}`); });
  const log = createLogger({ component: 'tetherd', file: '/dev/null', level: 'error' });
  log.debug('lease renewed', { ttl: 6 });
  log.error('boom');
  untap();
  log.info('after');
  t.deepEqual(seen, ['tetherd debug lease renewed {"ttl":6}', 'tetherd error boom {}']);
  const failing = tapLogs(() => { throw new Error('a broken tap'); });
  t.notThrows(() => log.error('still logs'));
  failing();
});
