import { join } from 'node:path';
import { nodeCrypto } from '../lib/builtin.js';
import { CniError, ErrorCode } from '../lib/cni/errors.js';
import { FileKV } from '../lib/store/file.js';
import { DeferredKV } from '../lib/store/deferred.js';
import { withFileLock } from '../lib/store/lock.js';
import { StoreUnavailableError, type KV } from '../lib/store/kv.js';
import type { IpamConfig } from './config.js';

/** Where a network's IPAM keys live in etcd (the node agent reads the blocks from there too). */
export const ipamEtcdPrefix = (etcdPrefix: string, network: string) => `${etcdPrefix}/ipam/${network}/`;

/** Which member of a cluster answered last is remembered on this node, for the next exec (lib/store/etcd-members.ts). */
export function etcdMembersFile(dataDir: string, endpoints: string[]): string {
  return join(dataDir, `etcd-members-${nodeCrypto().createHash('sha256').update(endpoints.join(',')).digest('hex').slice(0, 12)}.json`);
}

/** The store a network's IPAM state lives in: etcd when configured, else the embedded one under dataDir/<network>. */
export function openStore(cfg: IpamConfig): KV {
  if (cfg.etcd) {
    const { endpoints, prefix, tls, username, password, timeoutMs } = cfg.etcd;
    return new DeferredKV(endpoints.join(','), async () => new (await import('../lib/store/etcd.js')).EtcdKV({
      endpoints, prefix: ipamEtcdPrefix(prefix, cfg.network), tls, username, password, timeoutMs, membersFile: etcdMembersFile(cfg.dataDir, endpoints),
    }));
  }
  return new FileKV(join(cfg.dataDir, cfg.network));
}

/**
 * Allocations of one node are serialized by a node-local lock (beside the embedded store, or under
 * dataDir for etcd): many containers starting at once on a node would otherwise race for the same
 * block and retry each other into the ground. Nodes still coordinate only through conditional
 * transactions, so this lock is about speed, never about correctness. Waiters are served in arrival
 * order and wait as long as the holder is alive and working (lib/store/lock.ts), so a burst of ADDs
 * on a busy node queues instead of failing; `what` tells waiters and error messages who holds it.
 */
export function nodeLock(cfg: IpamConfig, what: string): <T>(fn: () => Promise<T>) => Promise<T> {
  const path = join(cfg.dataDir, cfg.network, 'allocate.lock');
  return (fn) => withFileLock(path, fn, { what, boost: true });
}

/** Store failures are transient from the runtime's point of view: code 11, naming where. */
export async function withStore<T>(kv: KV, fn: () => Promise<T>): Promise<T> {
  try {
    return await fn();
  } catch (e) {
    if (e instanceof StoreUnavailableError) throw new CniError(ErrorCode.TryAgainLater, `IPAM store unavailable: ${e.message}`, kv.where);
    throw e;
  } finally {
    kv.close();
  }
}
