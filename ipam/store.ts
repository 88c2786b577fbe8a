import { join } from 'node:path';
import { CniError, ErrorCode } from '../lib/cni/errors.js';
import { FileKV } from '../lib/store/file.js';
import { StoreUnavailableError, type KV } from '../lib/store/kv.js';
import type { IpamConfig } from './config.js';

/** The store a network's IPAM state lives in: the embedded one under dataDir/<network>. */
export function openStore(cfg: IpamConfig): KV {
  return new FileKV(join(cfg.dataDir, cfg.network));
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
