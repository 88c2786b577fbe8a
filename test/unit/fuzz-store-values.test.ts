import test from 'ava';
import { Allocator } from '../../ipam/allocator.js';
import { parseIpamConfig } from '../../ipam/config.js';
import { CniError } from '../../lib/cni/errors.js';
import { formatIP } from '../../lib/ip/addr.js';
import type { NetConf } from '../../lib/cni/types.js';
import type { Entry, KV, Txn } from '../../lib/store/kv.js';
import { xorshift32 } from '../helpers/random.js';

// Values in the store written by someone else (another version, a person with etcdctl, a bug): the
// allocator must end every operation in success or a CniError, never a crash, and must never hand out
// an address that a well-formed record of the pool shows as held.

class MemKV implements KV {
  readonly where = 'memory';
  private rev = 0;
  readonly data = new Map<string, Entry>();
  async get(key: string) { return this.data.get(key); }
  async range(prefix: string) { return new Map([...this.data].filter(([k]) => k.startsWith(prefix)).sort(([a], [b]) => (a < b ? -1 : 1))); }
  async txn(t: Txn) {
    for (const c of t.if) if ((this.data.get(c.key)?.version ?? 0) !== c.version) return false;
    this.rev++;
    for (const p of t.put ?? []) this.data.set(p.key, { value: p.value, version: this.rev });
    for (const k of t.del ?? []) this.data.delete(k);
    return true;
  }
  close() { /* nothing */ }
}

const rng = xorshift32;

const cfg = parseIpamConfig({ cniVersion: '1.1.0', name: 'fzs', type: 'x', ipam: { type: 'tether-ipam', dataDir: '/tmp/unused', nodeName: 'n1', blockSize: 29, ranges: [[{ subnet: '10.75.0.0/27' }]] } } as NetConf);

function mangle(json: string, r: () => number): string {
  const pick = <T>(xs: T[]) => xs[Math.floor(r() * xs.length)];
  const weird = () => pick<unknown>([null, 1, -1, 1e308, '', 'x', [], {}, [null], ['a/b', 7], '10.75.0.0/27', '999.0.0.0/29', { cidr: 1 }, true]);
  if (r() < 0.15) return pick(['', '{', 'null', '[]', '"text"', '{"cidr":', '\u0000']);
  let v: any;
  try { v = JSON.parse(json); } catch { return json; }
  if (v && typeof v === 'object') {
    for (const k of Object.keys(v)) if (r() < 0.3) v[k] = weird();
    // A slot rewritten to null by someone else really frees it: that is theirs to answer for, so
    // slots are damaged only into values that cannot mean "free".
    if (Array.isArray(v.allocations)) v.allocations = v.allocations.map((a: unknown) => (r() < 0.2 ? pick<unknown>([1, '', 'x', [], {}, true]) : a));
    if (r() < 0.1) v[pick(['cidr', 'node', 'allocations', 'next', 'ips', 'since'])] = weird();
  }
  return JSON.stringify(v);
}

test('10,000 operations over mangled block and handle records: success or a CniError, no address handed out twice', async (t) => {
  const r = rng(0x570e);
  let errors = 0;
  for (let round = 0; round < 500; round++) {
    const kv = new MemKV();
    const alloc = new Allocator(kv, cfg);
    // A healthy pool first, then someone else's writes damage some records.
    for (let i = 0; i < 6; i++) await alloc.allocate({ containerID: `c${i}`, ifname: 'eth0' });
    for (const [k, e] of kv.data) if (r() < 0.3) kv.data.set(k, { value: mangle(e.value, r), version: e.version + 1000 });
    // What each owner was told it holds, from the answers the allocator gave.
    const told = new Map<string, string[]>();
    for (let op = 0; op < 20; op++) {
      const id = { containerID: `c${Math.floor(r() * 12)}`, ifname: 'eth0' };
      const who = `${id.containerID}/${id.ifname}`;
      try {
        if (r() < 0.5) {
          const got = await alloc.allocate(id);
          told.set(who, got.ips.map((x) => formatIP(x.ip)));
        } else {
          await alloc.release(id);
          told.delete(who);
        }
        await alloc.list();
      } catch (e) {
        if (!(e instanceof CniError)) t.fail(`round ${round} op ${op}: ${(e as Error).name}: ${(e as Error).message}`);
        else if (e.code !== 11 || !/is damaged \(/.test(e.message)) t.fail(`round ${round} op ${op}: unexpected error ${e.code} ${e.message}`);
        errors++;
      }
      const seen = new Map<string, string>();
      for (const [owner, ips] of told) {
        for (const ip of ips) {
          if (seen.has(ip)) t.fail(`round ${round} op ${op}: ${ip} handed to ${seen.get(ip)} and to ${owner}`);
          seen.set(ip, owner);
        }
      }
    }
  }
  t.log(`${errors} operations ended in a CniError`);
  t.true(errors > 100, 'the damage does reach the allocator');
});
