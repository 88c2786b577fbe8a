import { serveMetrics, DEFAULT_METRICS_ADDRESS, type MetricsServer } from '../lib/metrics-http.js';
import { collectIpam, OpLogFollower, tetherMetrics, type TetherMetrics } from './tether-metrics.js';

export interface ObserverOptions {
  /** host:port, [v6]:port or :port. */
  address?: string;
  /** tether's version, for tether_build_info. */
  version: string;
  /** Conf dir whose tether-ipam networks are reported (omit: no IPAM gauges). */
  confDir?: string;
  /** The plugins' operation log to follow (omit: no tether_cni_* series). */
  opLog?: string;
}

/** Everything tetherd needs to serve its metrics, in one call; the agent sets the rest of the gauges itself. */
export async function startObserver(o: ObserverOptions): Promise<{ metrics: TetherMetrics; server: MetricsServer }> {
  const metrics = tetherMetrics();
  metrics.buildInfo.set({ version: o.version }, 1);
  if (o.confDir) collectIpam(metrics, o.confDir);
  if (o.opLog) new OpLogFollower(o.opLog, metrics).attach();
  const server = await serveMetrics(metrics.registry, o.address ?? DEFAULT_METRICS_ADDRESS);
  return { metrics, server };
}
