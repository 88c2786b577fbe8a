/**
 * The key-value store tether keeps IPAM state in. Two implementations: an embedded one on disk (the
 * default) and etcd (several nodes). Every write that depends on what was read is a transaction
 * conditioned on the versions read, so the same allocation code is correct on both.
 */
export interface Entry {
  value: string;
  /** Changes on every write of the key; 0 means "absent" in a condition. */
  version: number;
}

export interface Condition {
  key: string;
  /** The version the key must still have; 0: the key must not exist. */
  version: number;
}

export interface Txn {
  if: Condition[];
  put?: { key: string; value: string }[];
  del?: string[];
}

export interface KV {
  get(key: string): Promise<Entry | undefined>;
  /** Every key under prefix, in key order. */
  range(prefix: string): Promise<Map<string, Entry>>;
  /** Applies put/del only if every condition holds; false (and nothing written) when one does not. */
  txn(t: Txn): Promise<boolean>;
  /** A human-readable name for messages: a path, or the endpoints. */
  readonly where: string;
  close(): void;
}

/** The store could not be reached or used at all (not a lost race): IPAM answers "try again later". */
export class StoreUnavailableError extends Error {
  constructor(msg: string) { super(msg); this.name = 'StoreUnavailableError'; }
}
