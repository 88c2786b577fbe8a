import test from 'ava';
import { fileURLToPath } from 'node:url';
import { parseNetworkList } from '../../lib/libcni/conf.js';
import { Lab, type Container } from '../../conformance/lab.js';
import { diffSnapshots, snapshot } from '../../conformance/kernel.js';
import { stats } from '../../bench/stats.js';
import { heavy } from '../helpers/heavy.js';

// Load on one node: 200 containers attached at once through tether-bridge + tether-ipam, then detached
// at once, twice over. Every ADD and DEL must succeed (no lock timeout, no "try again"), every address
// must be distinct, and the node must end as it began. Latencies are reported, never asserted: on a
// loaded 2-core machine they say how the node copes, not whether it is right.
const dist = fileURLToPath(new URL('../../../dist/bin/', import.meta.url));
const WAVE = Number(process.env.TETHER_LOAD_WAVE ?? 200);
const ROUNDS = Number(process.env.TETHER_LOAD_ROUNDS ?? 2);

test(`${WAVE} parallel ADDs then DELs on one node, ${ROUNDS} rounds: all succeed, all distinct, nothing left`, async (t) => {
  t.timeout(10 * 60_000);
  const list = parseNetworkList(Buffer.from(JSON.stringify({
    cniVersion: '1.1.0', name: 'load',
    plugins: [{ type: 'tether-bridge', bridge: 'bload', isGateway: true, ipam: { type: 'tether-ipam', ranges: [[{ subnet: '10.73.0.0/22' }]] } }],
  })));
  const lab = new Lab(list, [dist], 120_000);
  try {
    const keeper = lab.newContainer();
    await lab.attach(keeper);
    const before = snapshot(lab.host);
    for (let round = 0; round < ROUNDS; round++) {
      const wave: Container[] = Array.from({ length: WAVE }, () => lab.newContainer());
      const timed = async <T>(fn: () => Promise<T>): Promise<[T, number]> => {
        const t0 = performance.now();
        const v = await fn();
        return [v, performance.now() - t0];
      };
      const adds = await heavy(() => Promise.allSettled(wave.map((c) => timed(() => lab.attach(c)))));
      const failedAdds = adds.flatMap((r, i) => (r.status === 'rejected' ? [`${wave[i].id}: ${(r.reason as Error).message}`] : []));
      t.deepEqual(failedAdds, [], `round ${round}: every ADD succeeds`);
      const ips = adds.flatMap((r) => (r.status === 'fulfilled' ? r.value[0].ips!.map((i) => i.address) : []));
      t.is(new Set(ips).size, WAVE, `round ${round}: ${WAVE} distinct addresses`);
      const dels = await heavy(() => Promise.allSettled(wave.map((c) => timed(() => lab.detach(c)))));
      const failedDels = dels.flatMap((r, i) => (r.status === 'rejected' ? [`${wave[i].id}: ${(r.reason as Error).message}`] : []));
      t.deepEqual(failedDels, [], `round ${round}: every DEL succeeds`);
      for (const c of wave) lab.removeContainer(c);
      const addMs = stats(adds.flatMap((r) => (r.status === 'fulfilled' ? [r.value[1]] : [])));
      const delMs = stats(dels.flatMap((r) => (r.status === 'fulfilled' ? [r.value[1]] : [])));
      t.log(`round ${round}: ADD p50 ${addMs.median.toFixed(0)} ms p99 ${addMs.p99.toFixed(0)} ms; DEL p50 ${delMs.median.toFixed(0)} ms p99 ${delMs.p99.toFixed(0)} ms`);
    }
    const left = await lab.reservations();
    t.is(left?.length, 1, `only the keeper's address is reserved: ${left?.join(', ')}`);
    t.deepEqual(diffSnapshots(before, snapshot(lab.host)), [], 'links, addresses and routes as before');
    await lab.detach(keeper);
  } finally {
    lab.close();
  }
});
