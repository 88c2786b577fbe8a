import { request } from 'node:http';
import { join } from 'node:path';
import { DockerRig, IMAGE } from '../test/helpers/docker.js';
import { stats, type Stats } from './stats.js';
import type { BenchRow } from './throughput.js';

// Docker on a tether network against Docker's own bridge driver, on the same private dockerd (the rig
// of test/helpers/docker.ts: its own namespaces, --bridge=none, so Docker's bridge network is made with
// `docker network create -d bridge`). Interleaved A B A B: `docker run -d` (returns once the container
// runs, its network joined) and `docker rm -f`; then the driver's own per-call times, from Tether.Stats.

const N = Number(process.env.BENCH_DOCKER_N ?? 20);
const WARMUP = 2;

function driverStats(socket: string): Promise<Record<string, { samplesMs: number[] }>> {
  return new Promise((resolve, reject) => {
    const req = request({ socketPath: socket, method: 'POST', path: '/Tether.Stats' }, (res) => {
      let text = '';
      res.on('data', (c: Buffer) => { text += c.toString(); });
      res.on('end', () => resolve(JSON.parse(text)));
    });
    req.on('error', reject);
    req.end();
  });
}

export async function benchDocker(): Promise<BenchRow[]> {
  const rig = new DockerRig();
  try {
    await rig.start();
    await rig.startPlugin();
    await rig.ok('network', 'create', '-d', 'tether', '--ipam-driver', 'tether', '--subnet', '10.95.0.0/24', 'bt');
    await rig.ok('network', 'create', '-d', 'bridge', '--subnet', '10.96.0.0/24', 'bb');
    const timed = async (args: string[]) => { const t0 = performance.now(); await rig.ok(...args); return performance.now() - t0; };
    const runT: number[] = []; const runB: number[] = []; const rmT: number[] = []; const rmB: number[] = [];
    for (let i = 0; i < WARMUP + N; i++) {
      const keep = i >= WARMUP;
      // A B, then B A: whichever goes second runs right after the other's container started or went,
      // while the kernel still finishes that work; alternating takes that order out of the comparison.
      const tFirst = i % 2 === 0;
      const pair = async (t: string[], b: string[]) => (tFirst ? [await timed(t), await timed(b)] : [await timed(b), await timed(t)].reverse());
      const [a, b] = await pair(['run', '-d', '--name', `t${i}`, '--network', 'bt', IMAGE, 'sleep', '100000'], ['run', '-d', '--name', `b${i}`, '--network', 'bb', IMAGE, 'sleep', '100000']);
      const [c, d] = await pair(['rm', '-f', `t${i}`], ['rm', '-f', `b${i}`]);
      if (keep) { runT.push(a); runB.push(b); rmT.push(c); rmB.push(d); }
    }
    const per = await driverStats(join(rig.dir, 'plugins', 'tether.sock'));
    const run = stats(runT);
    const rm = stats(rmT);
    // Every call Docker made to the driver while containers came and went, in the order a run and an rm make them.
    const calls: [string, Stats][] = [
      'IpamDriver.RequestAddress', 'NetworkDriver.CreateEndpoint', 'NetworkDriver.Join', 'NetworkDriver.ProgramExternalConnectivity', 'NetworkDriver.EndpointOperInfo',
      'NetworkDriver.RevokeExternalConnectivity', 'NetworkDriver.Leave', 'NetworkDriver.DeleteEndpoint', 'IpamDriver.ReleaseAddress',
    ].filter((m) => per[m]?.samplesMs.length).map((m) => [m, m.startsWith('IpamDriver.Request') || /CreateEndpoint|Join|Program|OperInfo/.test(m) ? run : rm]);
    return [
      { name: 'docker run -d --network N', a: 'tether driver + IPAM', b: 'Docker bridge driver', sa: run, sb: stats(runB), unit: 'ms' },
      { name: 'docker rm -f', a: 'tether driver + IPAM', b: 'Docker bridge driver', sa: rm, sb: stats(rmB), unit: 'ms' },
      ...calls.map(([m, whole]): BenchRow => ({ name: `  driver: ${m.split('.')[1]}`, a: 'tether, in the driver', b: whole === run ? 'the whole docker run' : 'the whole docker rm', sa: stats(per[m].samplesMs), sb: whole, unit: 'ms' })),
    ];
  } finally {
    await rig.stop();
  }
}
