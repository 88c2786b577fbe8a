import { spawn, type ChildProcess } from 'node:child_process';
import { request } from 'node:http';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { waitForLine } from '../conformance/spawn.js';
import { DockerRig, IMAGE } from '../test/helpers/docker.js';
import { stats, type Stats } from './stats.js';
import type { BenchRow } from './throughput.js';

// Docker on a tether network against Docker's own bridge driver, on the same private dockerd (the rig
// of test/helpers/docker.ts: its own namespaces, --bridge=none, so Docker's bridge network is made with
// `docker network create -d bridge`). Interleaved, each round in a rotated order: `docker run -d` (returns
// once the container runs, its network joined) and `docker rm -f`; then the driver's own per-call times,
// from Tether.Stats. A third network's driver does no work at all (bench/docker-floor-driver.ts): what a
// run costs with it is the remote protocol's own cost, the floor of any remote driver.

const N = Number(process.env.BENCH_DOCKER_N ?? 20);
const WARMUP = 2;
const BUN = fileURLToPath(new URL('../../node_modules/.bin/bun', import.meta.url));
const FLOOR = fileURLToPath(new URL('./docker-floor-driver.js', import.meta.url));

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
  let floor: ChildProcess | undefined;
  try {
    await rig.start();
    await rig.startPlugin();
    // In dockerd's namespaces, like tetherd's driver; stopped with the rig (its namespace goes, the process is killed).
    floor = spawn('nsenter', ['--target', String(rig.dockerdPid), '--net', '--mount', '--', BUN, FLOOR, '/run/docker/plugins/tfloor.sock', String(WARMUP + N), '10.97.0.1'], { stdio: ['ignore', 'pipe', 'inherit'] });
    await waitForLine(floor, 'floor driver: ready', 60_000);
    await rig.ok('network', 'create', '-d', 'tether', '--ipam-driver', 'tether', '--subnet', '10.95.0.0/24', 'bt');
    await rig.ok('network', 'create', '-d', 'bridge', '--subnet', '10.96.0.0/24', 'bb');
    await rig.ok('network', 'create', '-d', 'tfloor', '--ipam-driver', 'tfloor', '--subnet', '10.97.0.0/24', 'bf');
    const timed = async (args: string[]) => { const t0 = performance.now(); await rig.ok(...args); return performance.now() - t0; };
    const nets = { t: 'bt', b: 'bb', f: 'bf' } as const;
    const runs = { t: [] as number[], b: [] as number[], f: [] as number[] };
    const rms = { t: [] as number[], b: [] as number[], f: [] as number[] };
    // Whichever goes after another runs while the kernel still finishes the other's work: each driver
    // takes each place in turn, so that order is out of the comparison.
    const orders = [['t', 'b', 'f'], ['b', 'f', 't'], ['f', 't', 'b']] as const;
    for (let i = 0; i < WARMUP + N; i++) {
      const keep = i >= WARMUP;
      const order = orders[i % orders.length];
      for (const w of order) { const ms = await timed(['run', '-d', '--name', `${w}${i}`, '--network', nets[w], IMAGE, 'sleep', '100000']); if (keep) runs[w].push(ms); }
      for (const w of order) { const ms = await timed(['rm', '-f', `${w}${i}`]); if (keep) rms[w].push(ms); }
    }
    const per = await driverStats(join(rig.dir, 'plugins', 'tether.sock'));
    const run = stats(runs.t);
    const rm = stats(rms.t);
    const bridgeRun = stats(runs.b);
    // Every call Docker made to the driver while containers came and went, in the order a run and an rm make them.
    const calls: [string, Stats][] = [
      'IpamDriver.RequestAddress', 'NetworkDriver.CreateEndpoint', 'NetworkDriver.Join', 'NetworkDriver.ProgramExternalConnectivity', 'NetworkDriver.EndpointOperInfo',
      'NetworkDriver.RevokeExternalConnectivity', 'NetworkDriver.Leave', 'NetworkDriver.DeleteEndpoint', 'IpamDriver.ReleaseAddress',
    ].filter((m) => per[m]?.samplesMs.length).map((m) => [m, m.startsWith('IpamDriver.Request') || /CreateEndpoint|Join|Program|OperInfo/.test(m) ? run : rm]);
    return [
      { name: 'docker run -d --network N', a: 'tether driver + IPAM', b: 'Docker bridge driver', sa: run, sb: bridgeRun, unit: 'ms' },
      { name: 'docker rm -f', a: 'tether driver + IPAM', b: 'Docker bridge driver', sa: rm, sb: stats(rms.b), unit: 'ms' },
      { name: 'docker run -d: the remote protocol\'s floor', a: 'a remote driver doing nothing', b: 'Docker bridge driver', sa: stats(runs.f), sb: bridgeRun, unit: 'ms' },
      { name: 'docker run -d: tether over that floor', a: 'tether driver + IPAM', b: 'a remote driver doing nothing', sa: run, sb: stats(runs.f), unit: 'ms' },
      ...calls.map(([m, whole]): BenchRow => ({ name: `  driver: ${m.split('.')[1]}`, a: 'tether, in the driver', b: whole === run ? 'the whole docker run' : 'the whole docker rm', sa: stats(per[m].samplesMs), sb: whole, unit: 'ms' })),
    ];
  } finally {
    await rig.stop();
    floor?.kill();
  }
}
