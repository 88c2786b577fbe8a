import type { EtcdConfig } from '../ipam/config.js';
import { etcdMembersFile } from '../ipam/store.js';
import { EtcdKV } from '../lib/store/etcd.js';
import type { KV } from '../lib/store/kv.js';
import { DriverError } from './errors.js';

// A network that spans hosts is created once per dockerd (libnetwork gives a remote driver no cluster
// store outside swarm), so the hosts agree through tetherd's etcd: the first CreateNetwork records the
// network's definition, every later one on any host must match it, and each host records that it joined.
// The key is the overlay's name: dockerd does not tell a driver the Docker name of a network.

/** What must be the same on every host; per-host things (bridge name, gateway) are not part of it. */
export interface SharedDefinition {
  mode: string;
  subnet: string;
  internal: boolean;
  masquerade: boolean;
  mtu?: number;
  /** Host and time of the first creation, for the message of a refused one. */
  createdBy: string;
  createdAt: string;
}

export const sameDefinition = (a: SharedDefinition, b: SharedDefinition) => {
  const strip = ({ createdBy: _b, createdAt: _a, ...rest }: SharedDefinition) => JSON.stringify(rest, Object.keys(rest).sort());
  return strip(a) === strip(b);
};

/** The definition as `docker network create` flags, for error messages. */
export function describe(d: SharedDefinition): string {
  return [`-o mode=${d.mode}`, `--subnet ${d.subnet}`, ...(d.mtu ? [`-o mtu=${d.mtu}`] : []), ...(d.internal ? ['--internal'] : []), ...(d.masquerade ? [] : ['-o masquerade=false'])].join(' ');
}

export const conflict = (name: string, had: SharedDefinition, want: SharedDefinition) => new DriverError(
  `tether: network "${name}" is already defined across hosts as ${describe(had)} (created on ${had.createdBy}); `
  + `this host asked for ${describe(want)}; create it with the same definition, or remove it on every host first`);

const MAX_RETRIES = 5;

/** A host's membership of a network (`members/<name>/<host>`): what the other hosts learn of it. */
interface MemberRecord {
  networkID: string;
  joinedAt: string;
  /** -o allowNetworks= on this host: a host without the network allows the pair from this (isolation.ts). */
  allowNetworks?: string[];
}

/** A network defined across hosts: its definition, the hosts that joined it, and the networks any of them allows. */
export interface SharedNetwork {
  definition: SharedDefinition;
  hosts: string[];
  allowNetworks: string[];
}

export class SharedNetworks {
  /** `open` gives a store connection for one operation (closed after it). */
  constructor(private readonly open: () => KV) {}

  /** On tetherd's etcd, under <prefix>/docker/. */
  static onEtcd(etcd: EtcdConfig, dataDir: string): SharedNetworks {
    const { endpoints, prefix, tls, username, password, timeoutMs } = etcd;
    return new SharedNetworks(() => new EtcdKV({ endpoints, prefix: `${prefix}/docker/`, tls, username, password, timeoutMs, membersFile: etcdMembersFile(dataDir, endpoints) }));
  }

  private async within<T>(fn: (kv: KV) => Promise<T>): Promise<T> {
    const kv = this.open();
    try { return await fn(kv); } catch (e) {
      if (e instanceof DriverError) throw e;
      throw new DriverError(`tether: the store the hosts share (${kv.where}) cannot be used: ${(e as Error).message}; try again once it answers`);
    } finally { kv.close(); }
  }

  /**
   * This host joins the network `name`: its definition is recorded if it is the first, else must equal
   * the recorded one (refused naming both). Repeating it is harmless.
   */
  join(name: string, host: string, networkID: string, want: SharedDefinition, allowNetworks: string[] = []): Promise<void> {
    const defKey = `networks/${name}`;
    const memberKey = `members/${name}/${host}`;
    return this.within(async (kv) => {
      for (let i = 0; i < MAX_RETRIES; i++) {
        const had = await kv.get(defKey);
        const member = await kv.get(memberKey);
        if (had) {
          const def = JSON.parse(had.value) as SharedDefinition;
          if (!sameDefinition(def, want)) throw conflict(name, def, want);
        }
        const record: MemberRecord = { networkID, joinedAt: new Date().toISOString(), ...(allowNetworks.length ? { allowNetworks } : {}) };
        const member2 = { key: memberKey, value: JSON.stringify(record) };
        const ok = await kv.txn({
          if: [{ key: defKey, version: had?.version ?? 0 }, { key: memberKey, version: member?.version ?? 0 }],
          put: [...(had ? [] : [{ key: defKey, value: JSON.stringify(want) }]), member2],
        });
        if (ok) return;
      }
      throw new DriverError(`tether: network "${name}" kept changing in the shared store while this host joined it; try again`);
    });
  }

  /** This host leaves; the last host to leave removes the definition, so the name can be defined anew. */
  leave(name: string, host: string): Promise<void> {
    const defKey = `networks/${name}`;
    return this.within(async (kv) => {
      for (let i = 0; i < MAX_RETRIES; i++) {
        const member = await kv.get(`members/${name}/${host}`);
        if (member && !(await kv.txn({ if: [{ key: `members/${name}/${host}`, version: member.version }], del: [`members/${name}/${host}`] }))) continue;
        const others = await kv.range(`members/${name}/`);
        const def = await kv.get(defKey);
        if (others.size || !def) return;
        // Conditioned on every member key still absent would need a range condition; a host joining now
        // re-writes the definition itself (it finds none), so losing this race only repeats its write.
        if (await kv.txn({ if: [{ key: defKey, version: def.version }], del: [defKey] })) return;
      }
    });
  }

  /** Every recorded definition, by name. */
  definitions(): Promise<Map<string, SharedDefinition>> {
    return this.within(async (kv) => new Map([...(await kv.range('networks/'))].map(([k, e]) => [k.slice('networks/'.length), JSON.parse(e.value) as SharedDefinition])));
  }

  /**
   * Every recorded definition with its hosts and their allowances (two reads, whatever the number of
   * networks): each host's isolation learns the networks it has no member of from this.
   */
  networks(): Promise<Map<string, SharedNetwork>> {
    return this.within(async (kv) => {
      const out = new Map<string, SharedNetwork>();
      for (const [k, e] of await kv.range('networks/')) out.set(k.slice('networks/'.length), { definition: JSON.parse(e.value) as SharedDefinition, hosts: [], allowNetworks: [] });
      for (const [k, e] of await kv.range('members/')) {
        const [, name, host] = k.split('/');
        const n = out.get(name);
        if (!n) continue; // a member whose definition is being removed
        n.hosts.push(host);
        for (const a of (JSON.parse(e.value) as MemberRecord).allowNetworks ?? []) if (!n.allowNetworks.includes(a)) n.allowNetworks.push(a);
      }
      for (const n of out.values()) n.allowNetworks.sort();
      return out;
    });
  }

  /** The recorded definition and the hosts that joined it (status, tests). */
  get(name: string): Promise<{ definition?: SharedDefinition; hosts: string[] }> {
    return this.within(async (kv) => {
      const def = await kv.get(`networks/${name}`);
      const hosts = [...(await kv.range(`members/${name}/`)).keys()].map((k) => k.split('/').pop()!);
      return { ...(def ? { definition: JSON.parse(def.value) as SharedDefinition } : {}), hosts };
    });
  }
}
