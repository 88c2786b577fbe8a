import test from 'ava';
import { chmodSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { AGENT_HOLD_KEY, Allocator } from '../../ipam/allocator.js';
import { blockKey } from '../../ipam/blocks.js';
import { parseIpamConfig } from '../../ipam/config.js';
import { FileKV } from '../../lib/store/file.js';
import { AgentConfigError } from '../../tetherd/config.js';
import { KeyFileError, readKeyFile } from '../../tetherd/peers/auth.js';
import { parsePeerAgentConfig } from '../../tetherd/peers/config.js';
import { loadSnapshot, StateFileError } from '../../tetherd/peers/persist.js';
import { BlockCutter, syncStore, takeOut } from '../../tetherd/peers/store-sync.js';

const base = { store: 'peers', nodeName: 'n1', pool: '10.244.0.0/22', underlayIP: '198.18.0.11', peers: { addresses: ['198.18.0.12'] } };

test('peer config: defaults, and every bad field named with what it must be', (t) => {
  const c = parsePeerAgentConfig(base);
  t.like(c, { port: 6784, blockSize: 26, seed: false, keyFile: '/etc/tether/peers.key', voteSilenceMs: 60_000, reclaimAfterMs: 0, lowWater: 2, peers: ['198.18.0.12'] });
  const bad: [Record<string, unknown>, RegExp][] = [
    [{ ...base, etcd: { endpoints: ['http://x:2379'] } }, /"etcd" cannot be given with "store": "peers"/],
    [{ ...base, peers: {} }, /"peers.addresses" is empty/],
    [{ ...base, peers: { addresses: ['nope'] } }, /"peers.addresses" must be a list/],
    [{ ...base, pool: '10.0.0.0/8' }, /cuts 10.0.0.0\/8 into 262144 blocks/],
    [{ ...base, peers: { ...base.peers, voteSilence: 60, reclaimAfter: 30 } }, /reclaimAfter" must be 0 \(never\) or at least voteSilence/],
    [{ ...base, peers: { ...base.peers, keyFile: 'relative' } }, /"keyFile" must be an absolute path/],
    [{ ...base, mode: 'vxlan' }, /VXLAN on peers is not built yet/],
  ];
  for (const [o, re] of bad) t.throws(() => parsePeerAgentConfig(o), { instanceOf: AgentConfigError, message: re }, re.source);
  t.is(parsePeerAgentConfig({ ...base, peers: { seed: true } }).seed, true, 'a seed needs no addresses');
});

test('key file: at least 16 bytes, owner-only; state file: damaged is an error, absent is a first start', (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'peers-key-'));
  const k = join(dir, 'key');
  writeFileSync(k, 'short\n'); chmodSync(k, 0o600);
  t.throws(() => readKeyFile(k), { instanceOf: KeyFileError, message: /holds 5 bytes; at least 16/ });
  writeFileSync(k, 'a-long-enough-secret-0123456789\n'); chmodSync(k, 0o644);
  t.throws(() => readKeyFile(k), { instanceOf: KeyFileError, message: /readable by group or others.*chmod 600/ });
  chmodSync(k, 0o600);
  t.is(readKeyFile(k).toString(), 'a-long-enough-secret-0123456789');
  t.is(loadSnapshot(join(dir, 'none.json')), undefined);
  writeFileSync(join(dir, 's.json'), '{"format": "x"}');
  t.throws(() => loadSnapshot(join(dir, 's.json')), { instanceOf: StateFileError, message: /not a tether peer state/ });
});

const ipamConf = (dir: string) => parseIpamConfig({ cniVersion: '1.0.0', name: 'lab', ipam: { type: 'tether-ipam', ranges: [[{ subnet: '10.244.0.0/22' }]], blockSize: 26, dataDir: dir, nodeName: 'n1', agentBlocks: true } } as never);

test('agentBlocks: tether-ipam allocates only from the blocks the agent wrote, never claims one, and stops while the agent holds it', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'peers-ipam-'));
  const kv = new FileKV(join(dir, 'lab'));
  const a = new Allocator(new FileKV(join(dir, 'lab')), ipamConf(dir));
  const e = await a.allocate({ containerID: 'c0', ifname: 'eth0' }).catch((x: { code: number; message: string }) => x);
  t.like(e, { code: 11 });
  t.regex((e as unknown as Error).message, /owns no block/);
  t.deepEqual([...(await kv.range('block/')).keys()], [], 'nothing claimed by IPAM');
  const cut = new BlockCutter({ ip: { family: 4, bytes: new Uint8Array([10, 244, 0, 0]) } as never, prefix: 22 }, 26);
  t.is(cut.count, 16);
  t.is(cut.index('10.244.1.64/26'), 5);
  t.is(cut.index('10.244.1.65/26'), -1);
  t.is(cut.index('10.245.0.0/26'), -1);
  const r = await syncStore(kv, cut, 'n1', new Set([5, 6]), null);
  t.deepEqual(r.added, [5, 6]);
  const ips: string[] = [];
  for (let i = 0; i < 70; i++) ips.push((await a.allocate({ containerID: `c${i}`, ifname: 'eth0' })).ips[0].ip.bytes.join('.'));
  t.true(ips.every((ip) => /^10\.244\.1\.(6[4-9]|[7-9]\d|1\d\d)$/.test(ip)), 'inside 10.244.1.64/26 and 10.244.1.128/26');
  t.like(await a.allocate({ containerID: 'x', ifname: 'eth0' }, [{ family: 4, bytes: new Uint8Array([10, 244, 0, 5]) } as never]).catch((x) => x), { code: 7 }, 'a requested address outside our blocks');
  // Block 6 has addresses: it cannot leave the store; the table giving it away makes it "foreign", never deleted.
  t.deepEqual(await takeOut(kv, cut, [6]), []);
  const r2 = await syncStore(kv, cut, 'n1', new Set([5, 7]), 'held for a test');
  t.deepEqual(r2.foreign, [6]);
  t.deepEqual(r2.added, [7]);
  t.truthy(await kv.get(blockKey(cut.cidr(6))));
  t.like(await a.allocate({ containerID: 'held', ifname: 'eth0' }).catch((x) => x), { code: 11, message: 'tetherd holds allocation on this node: held for a test' });
  t.truthy(await kv.get(AGENT_HOLD_KEY));
  await syncStore(kv, cut, 'n1', new Set([5, 7]), null);
  t.is(await kv.get(AGENT_HOLD_KEY), undefined);
  t.deepEqual(await takeOut(kv, cut, [7]), [7], 'an empty block leaves');
  t.is(await kv.get(blockKey(cut.cidr(7))), undefined);
});
