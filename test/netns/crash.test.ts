import test from 'ava';
import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseNetworkList, type NetworkList } from '../../lib/libcni/conf.js';
import { CniRuntime } from '../../lib/libcni/runtime.js';
import { Lab } from '../../conformance/lab.js';
import { diffSnapshots, snapshot } from '../../conformance/kernel.js';
import { Allocator } from '../../ipam/allocator.js';
import { parseIpamConfig } from '../../ipam/config.js';
import { openStore } from '../../ipam/store.js';
import type { NetConf } from '../../lib/cni/types.js';
import * as C from '../../lib/netlink/constants.js';
import { Netlink } from '../../lib/netlink/handle.js';
import { mulberry32 } from '../helpers/random.js';

// Crash safety: the plugin is killed with SIGKILL (the runtime's timeout) at random moments of ADD and
// DEL. Afterwards the runtime's own duty, DEL until it succeeds, then GC, must leave the node and the
// pool exactly as before: no address leaked or held twice, no veth, address or route left, a store
// that still reads. TETHER_CRASH_ITERATIONS=1000 (npm run test:crash) is the long variant; the seed is
// printed so a failure replays with TETHER_CRASH_SEED.
const dist = fileURLToPath(new URL('../../../dist/bin/', import.meta.url));
const ITERATIONS = Number(process.env.TETHER_CRASH_ITERATIONS ?? 100);
const SEED = Number(process.env.TETHER_CRASH_SEED ?? Date.now() % 1_000_000);


function network(): NetworkList {
  return parseNetworkList(Buffer.from(JSON.stringify({
    cniVersion: '1.1.0', name: 'crash',
    plugins: [{
      type: 'tether-bridge', bridge: 'bcrash', isGateway: true,
      ipam: { type: 'tether-ipam', ranges: [[{ subnet: '10.71.0.0/22' }], [{ subnet: 'fd71::/64' }]] },
    }],
  })));
}

/** Every file under dir, relative to it. */
function files(dir: string, rel = ''): string[] {
  const out: string[] = [];
  for (const e of readdirSync(join(dir, rel), { withFileTypes: true })) {
    const p = join(rel, e.name);
    if (e.isDirectory()) out.push(...files(dir, p)); else out.push(p);
  }
  return out;
}

test(`kill -9 at random points of ADD and DEL (${ITERATIONS} iterations): DEL + GC leave nothing behind`, async (t) => {
  t.timeout(20 * 60_000);
  t.log(`seed ${SEED} (replay with TETHER_CRASH_SEED=${SEED})`);
  const rand = mulberry32(SEED);
  const lab = new Lab(network(), [dist]);
  try {
    // A container that stays attached throughout: nothing the crashes do may disturb it.
    const keeper = lab.newContainer();
    const kept = await lab.attach(keeper);
    const before = snapshot(lab.host);
    const outcomes = { addKilled: 0, addDone: 0, delKilled: 0, nsGoneFirst: 0 };
    for (let i = 0; i < ITERATIONS; i++) {
      const c = lab.newContainer();
      // Kill somewhere between exec and well past a normal ADD's end (~20 ms here).
      const killer = (ms: number) => new CniRuntime({ ...lab.runtime.opts, timeoutMs: ms });
      try {
        await killer(1 + Math.floor(rand() * 40)).add(lab.list, lab.spec(c));
        outcomes.addDone++;
      } catch (e) {
        t.regex((e as Error).message, /timed out|killed|SIGKILL/i, `ADD ${i} failed for another reason than the kill`);
        outcomes.addKilled++;
      }
      if (rand() < 0.4) {
        try { await killer(1 + Math.floor(rand() * 40)).del(lab.list, lab.spec(c)); } catch { outcomes.delKilled++; }
      }
      // A runtime may also tear the namespace down before it gets to DEL.
      if (rand() < 0.2) { lab.removeContainer(c); outcomes.nsGoneFirst++; }
      await lab.detach(c);
      lab.removeContainer(c);
    }
    t.log(JSON.stringify(outcomes));
    t.true(outcomes.addKilled >= ITERATIONS / 10, `the kill must land inside ADD often enough to mean something (${outcomes.addKilled} of ${ITERATIONS})`);

    // GC with the keeper as the only valid attachment: whatever a crash left in IPAM goes.
    const gc = await lab.runtime.gc(lab.list, [{ containerID: keeper.id, ifname: 'eth0' }]);
    t.deepEqual(gc.errors.map((e) => e.message), []);

    const plugin = lab.list.plugins[0];
    const cfg = parseIpamConfig({ ...plugin, name: lab.list.name, cniVersion: lab.list.cniVersion } as NetConf);
    const kv = openStore(cfg);
    try {
      const alloc = new Allocator(kv, cfg);
      const held = await alloc.list();
      t.deepEqual(held.map((a) => a.ip).sort(), kept.ips!.map((ip) => ip.address.split('/')[0]).sort(), 'only the keeper holds addresses');
      t.is(new Set(held.map((a) => a.ip)).size, held.length, 'no address is held twice');
      t.deepEqual((await alloc.handles()).map((h) => h.containerID), [keeper.id], 'only the keeper has a handle');
    } finally { kv.close(); }
    t.deepEqual(diffSnapshots(before, snapshot(lab.host)), [], 'links, addresses and routes as before');
    Netlink.within(lab.host, (nl) => {
      const permanent = [...nl.neighbors(C.AF_INET), ...nl.neighbors(C.AF_INET6)].filter((n) => n.state & C.NUD_PERMANENT);
      t.deepEqual(permanent, [], 'no permanent neighbour entries');
      t.deepEqual(nl.links({ kind: 'veth' }).length, 1, 'only the keeper\'s veth');
    });
    await lab.detach(keeper);
    t.deepEqual(await lab.reservations(), []);
    // The keeper's release was a transaction: it found and swept whatever a killed writer left, and
    // no half-applied transaction, temporary file or empty handle directory remains.
    const store = join(lab.ipamDataDir!, lab.list.name);
    t.deepEqual(files(store).filter((f) => !/^(lock|allocate\.lock|revision|keys\/block\/[^/]+)$/.test(f)), [], 'only the lock files, the revision and the blocks remain');
    t.deepEqual(readdirSync(join(store, 'keys')).filter((d) => d !== 'block'), [], 'no handle directory outlives its handles');
  } finally {
    lab.close();
  }
});
