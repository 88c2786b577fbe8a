import type { Entry, KV, Txn } from './kv.js';

/**
 * A KV whose implementation is built at its first operation: a plugin exec loads the code of the store
 * its network names and no other (etcd's client is ~10 KB of a plugin's ~170 KB, paid on every exec
 * of a network that keeps its state on disk). Errors of building it surface at that first operation.
 */
export class DeferredKV implements KV {
  private inner?: Promise<KV>;

  constructor(readonly where: string, private readonly build: () => Promise<KV>) {}

  private kv(): Promise<KV> {
    return (this.inner ??= this.build());
  }

  async get(key: string): Promise<Entry | undefined> { return (await this.kv()).get(key); }
  async range(prefix: string): Promise<Map<string, Entry>> { return (await this.kv()).range(prefix); }
  async txn(t: Txn): Promise<boolean> { return (await this.kv()).txn(t); }

  close(): void {
    this.inner?.then((kv) => kv.close(), () => { /* never built: nothing to close */ });
  }
}
