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
      const a = await timed(['run', '-d', '--name', `t${i}`, '--network', 'bt', IMAGE, 'sleep', '100000']);
      const b = await timed(['run', '-d', '--name', `b${i}`, '--network', 'bb', IMAGE, 'sleep', '100000']);
      const c = await timed(['rm', '-f', `t${i}`]);
      const d = await timed(['rm', '-f', `b${i}`]);
      if (keep) { runT.push(a); runB.push(b); rmT.push(c); rmB.push(d); }
    }
    const per = await driverStats(join(rig.dir, 'plugins', 'tether.sock'));
    const call = (m: string): Stats => stats(per[m]?.samplesMs ?? [0]);
    const run = stats(runT);
    return [
      { name: 'docker run -d --network N', a: 'tether driver + IPAM', b: 'Docker bridge driver', sa: run, sb: stats(runB), unit: 'ms' },
      { name: 'docker rm -f', a: 'tether driver + IPAM', b: 'Docker bridge driver', sa: stats(rmT), sb: stats(rmB), unit: 'ms' },
      { name: '  driver: CreateEndpoint', a: 'tether, in the driver', b: 'the whole docker run', sa: call('NetworkDriver.CreateEndpoint'), sb: run, unit: 'ms' },
      { name: '  driver: Join', a: 'tether, in the driver', b: 'the whole docker run', sa: call('NetworkDriver.Join'), sb: run, unit: 'ms' },
      { name: '  driver: RequestAddress', a: 'tether, in the driver', b: 'the whole docker run', sa: call('IpamDriver.RequestAddress'), sb: run, unit: 'ms' },
      { name: '  driver: DeleteEndpoint', a: 'tether, in the driver', b: 'the whole docker rm', sa: call('NetworkDriver.DeleteEndpoint'), sb: stats(rmT), unit: 'ms' },
    ];
  } finally {
    await rig.stop();
  }
}
