import { Lab, type Container } from '../conformance/lab.js';
import type { NetworkList } from '../lib/libcni/conf.js';
import { childrenCpuMs } from './cpu.js';
import { stats, type Stats } from './stats.js';

/**
 * Bursts of K ADDs started at once on one node, the way a kubelet, containerd or podman starts pods,
 * then the K DELs, alternating the two suites round by round so drift hits both. Each ADD's latency
 * is from the runtime's exec to the plugin's exit; makespan is the whole burst.
 */
export interface BurstRow { name: string; a: string; b: string; sa: Stats; sb: Stats; unit: string }

interface Burst { add: number[]; del: number[]; addSpan: number; delSpan: number; addCpu: number; delCpu: number }

async function timed<T>(fn: () => Promise<T>): Promise<number> {
  const t = process.hrtime.bigint();
  await fn();
  return Number(process.hrtime.bigint() - t) / 1e6;
}

async function burst(lab: Lab, k: number): Promise<Burst> {
  const cs: Container[] = Array.from({ length: k }, () => lab.newContainer());
  let cpu = childrenCpuMs();
  const t0 = process.hrtime.bigint();
  const add = await Promise.all(cs.map((c) => timed(() => lab.attach(c))));
  const addSpan = Number(process.hrtime.bigint() - t0) / 1e6;
  const addCpu = (childrenCpuMs() - cpu) / k;
  cpu = childrenCpuMs();
  const t1 = process.hrtime.bigint();
  const del = await Promise.all(cs.map((c) => timed(() => lab.detach(c))));
  const delSpan = Number(process.hrtime.bigint() - t1) / 1e6;
  const delCpu = (childrenCpuMs() - cpu) / k;
  for (const c of cs) lab.removeContainer(c);
  return { add, del, addSpan, delSpan, addCpu, delCpu };
}

export async function burstBench(a: { list: NetworkList; path: string[] }, b: { list: NetworkList; path: string[] }, ks = [1, 16, 30, 100], rounds = 3): Promise<BurstRow[]> {
  const labA = new Lab(a.list, a.path, 300_000, 'tbsa');
  const labB = new Lab(b.list, b.path, 300_000, 'tbsb');
  const rows: BurstRow[] = [];
  const nameA = a.list.plugins.map((p) => p.type).join('+');
  const nameB = b.list.plugins.map((p) => p.type).join('+');
  try {
    await burst(labA, 4); await burst(labB, 4); // warm-up: bridges made, caches filled
    for (const k of ks) {
      const ra: Burst[] = [];
      const rb: Burst[] = [];
      for (let r = 0; r < rounds; r++) {
        // Alternate which suite goes first each round.
        if (r % 2 === 0) { ra.push(await burst(labA, k)); rb.push(await burst(labB, k)); } else { rb.push(await burst(labB, k)); ra.push(await burst(labA, k)); }
      }
      const all = (rs: Burst[], f: (x: Burst) => number[]) => rs.flatMap(f);
      const sa = stats(all(ra, (x) => x.add));
      const sb = stats(all(rb, (x) => x.add));
      const da = stats(all(ra, (x) => x.del));
      const db = stats(all(rb, (x) => x.del));
      const one = (v: number) => stats([v]);
      const median = (xs: number[]) => stats(xs).median;
      rows.push({ name: `burst of ${k} ADDs: p50`, a: nameA, b: nameB, sa, sb, unit: 'ms' });
      if (k > 1) {
        rows.push({ name: `  p99`, a: nameA, b: nameB, sa: one(sa.p99), sb: one(sb.p99), unit: 'ms' });
        rows.push({ name: `  makespan (median of ${rounds})`, a: nameA, b: nameB, sa: one(median(ra.map((x) => x.addSpan))), sb: one(median(rb.map((x) => x.addSpan))), unit: 'ms' });
        // On a machine this size a burst is CPU-bound: the makespan follows the CPU each ADD needs.
        rows.push({ name: '  CPU per ADD (user+sys, process tree)', a: nameA, b: nameB, sa: one(median(ra.map((x) => x.addCpu))), sb: one(median(rb.map((x) => x.addCpu))), unit: 'ms' });
      }
      rows.push({ name: `burst of ${k} DELs: p50`, a: nameA, b: nameB, sa: da, sb: db, unit: 'ms' });
      if (k > 1) {
        rows.push({ name: `  p99`, a: nameA, b: nameB, sa: one(da.p99), sb: one(db.p99), unit: 'ms' });
        rows.push({ name: `  makespan (median of ${rounds})`, a: nameA, b: nameB, sa: one(median(ra.map((x) => x.delSpan))), sb: one(median(rb.map((x) => x.delSpan))), unit: 'ms' });
        rows.push({ name: '  CPU per DEL (user+sys, process tree)', a: nameA, b: nameB, sa: one(median(ra.map((x) => x.delCpu))), sb: one(median(rb.map((x) => x.delCpu))), unit: 'ms' });
      }
    }
  } finally {
    labA.close();
    labB.close();
  }
  return rows;
}
