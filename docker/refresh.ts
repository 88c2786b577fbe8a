import type { Logger } from '../lib/log.js';
import type { NetworkDriver } from './network.js';
import type { PluginServer } from './server.js';

// The other hosts' -o mode=bgp networks are learnt at the driver's start (this timer's first run, right
// away: the start itself waits on no store) and when one is made or removed here (docker/network.ts);
// a network made later on another host, and a definition removed by its last host (its foreign span
// left behind here), are only seen by this timer. It reads the store outside the request queue (a
// slow or absent etcd delays no request), then the few ms of kernel changes run in turn with the
// requests. Failures are logged and retried at the next tick.

export const HOSTS_REFRESH_MS = 30_000;

/** Starts the periodic refresh; the returned function stops it. */
export function refreshHostsPeriodically(net: NetworkDriver, server: PluginServer, log: Pick<Logger, 'warn'>, everyMs = HOSTS_REFRESH_MS): () => void {
  let running = false;
  const tick = async () => {
    if (running) return; // the previous one still waits on the store
    running = true;
    try {
      const view = await net.hostsView();
      if (view) await server.exclusive(() => net.applyHosts(view));
    } catch (e) {
      log.warn('periodic refresh of the other hosts\' -o mode=bgp networks failed (retried)', { error: (e as Error).message });
    } finally { running = false; }
  };
  void tick();
  const timer = setInterval(() => { void tick(); }, everyMs);
  timer.unref();
  return () => clearInterval(timer);
}
