import type { Logger } from '../lib/log.js';
import type { AgentEvents } from './events.js';
import type { EtcdKV } from '../lib/store/etcd.js';

/**
 * Keeps a node's etcd lease alive: a keepalive every third of the TTL; when etcd says the lease is
 * gone (it expired during an outage, or someone revoked it) `lost()` runs, which publishes the node's
 * keys again under a new lease and hands it back with hold(). A failed keepalive is retried at the
 * next interval: the lease outlives two missed renewals.
 */
export class LeaseKeeper {
  private lease?: string;
  private timer?: NodeJS.Timeout;
  private busy = false;

  constructor(private readonly kv: EtcdKV, private readonly ttl: number, private readonly log: Logger, private readonly lost: () => Promise<void>, private readonly events?: AgentEvents) {}

  get id(): string | undefined { return this.lease; }

  hold(lease: string): void {
    this.lease = lease;
    this.timer ??= setInterval(() => { void this.renew(); }, Math.max(1000, (this.ttl * 1000) / 3));
  }

  stop(): void { clearInterval(this.timer); this.timer = undefined; }

  private async renew(): Promise<void> {
    if (this.busy || !this.lease) return;
    this.busy = true;
    try {
      const ttl = await this.kv.leaseKeepAlive(this.lease);
      if (ttl > 0) { this.log.debug('lease renewed', { lease: this.lease, ttl }); this.events?.emit({ kind: 'lease', result: 'ok' }); return; }
      this.log.warn('lease is gone (expired or revoked); publishing again', { lease: this.lease });
      this.events?.emit({ kind: 'lease', result: 'expired' });
      await this.lost();
    } catch (e) {
      this.log.warn('lease renewal failed; retrying at the next interval', { error: (e as Error).message });
      this.events?.emit({ kind: 'lease', result: 'error' });
      this.events?.emit({ kind: 'error', code: 'lease_renewal_failed' });
    } finally { this.busy = false; }
  }
}
