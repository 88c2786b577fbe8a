import { spawn, spawnSync } from 'node:child_process';
import { closeSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseCIDR } from '../lib/ip/addr.js';
import * as C from '../lib/netlink/constants.js';
import { Netlink } from '../lib/netlink/handle.js';
import { createNamedNetns, deleteNamedNetns, openNetns } from '../lib/netns/netns.js';
import { stats, type Stats } from './stats.js';
import { RTPROT_TETHER_BGP } from '../lib/route-protocols.js';

// The BGP speaker holding 100 peers' worth of routes: 100 iBGP sessions from a driver namespace, each
// announcing a /26 and ten /32s, all installed in the speaker namespace's kernel. Measured for the
// compiled tether bgp-speaker and, on the same driver, for BIRD 2 with its kernel protocol: time from
// the first connection to 1100 kernel routes, CPU spent on it, resident memory, and CPU per second of
// steady state (keepalives only).

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
const PEERS = Number(process.env.BENCH_BGP_PEERS ?? 100);
const ROUTES = 11;
const HOLD = 9;
const STEADY_S = Number(process.env.BENCH_BGP_STEADY ?? 20);
const TICK = 100; // USER_HZ

export interface BgpRow { name: string; a: string; b: string; sa: Stats; sb: Stats; unit: string }

interface Sample { rssKiB: number; hwmKiB: number; cpuMs: number }

function sample(pid: number): Sample {
  const st = readFileSync(`/proc/${pid}/status`, 'utf8');
  const kib = (k: string) => Number(new RegExp(`^${k}:\\s+(\\d+)`, 'm').exec(st)?.[1] ?? NaN);
  const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ');
  // utime and stime are fields 14 and 15 of stat; after "comm) " they are at 11 and 12.
  return { rssKiB: kib('VmRSS'), hwmKiB: kib('VmHWM'), cpuMs: ((Number(fields[11]) + Number(fields[12])) * 1000) / TICK };
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Speaker namespace (198.18.0.1/16) and driver namespace (198.18.1.1-PEERS) joined by a veth. */
function topology(prefix: string): { sp: string; drv: string; spPath: string } {
  const sp = `${prefix}-sp`;
  const drv = `${prefix}-drv`;
  const spPath = createNamedNetns(sp);
  const drvPath = createNamedNetns(drv);
  const fd = openNetns(drvPath);
  const a = Netlink.at(spPath);
  const b = Netlink.at(drvPath);
  try {
    const l = a.linkAdd({ kind: 'veth', name: 'tbg0', up: true, peer: { name: 'tbg1', netnsFd: fd } })!;
    a.addrAdd(l.index, parseCIDR('198.18.0.1/16')!);
    a.linkSet(a.linkByName('lo')!.index, { up: true });
    const r = b.linkByName('tbg1')!;
    b.linkSet(r.index, { up: true });
    b.linkSet(b.linkByName('lo')!.index, { up: true });
    for (let i = 1; i <= PEERS; i++) b.addrAdd(r.index, parseCIDR(`198.18.1.${i}/16`)!);
  } finally {
    closeSync(fd);
    a.close();
    b.close();
  }
  return { sp, drv, spPath };
}

function kernelRoutes(path: string, protocol: number): number {
  const nl = Netlink.at(path);
  try { return nl.routes(4, { protocol }).length; } finally { nl.close(); }
}

function tetherConfig(dir: string): string[] {
  const cfg = join(dir, 'speaker.json');
  writeFileSync(cfg, JSON.stringify({
    asn: 64512, routerId: '198.18.0.1', listen: [{ address: '198.18.0.1' }],
    peers: Array.from({ length: PEERS }, (_, i) => ({ address: `198.18.1.${i + 1}`, asn: 64512, passive: true, holdTime: HOLD, families: [4] })),
    announce: ['10.244.0.0/26'], status: join(dir, 'status.json'), log: { level: 'warn' },
  }));
  return [join(root, 'dist/bin/tether'), 'bgp-speaker', '--config', cfg];
}

function birdConfig(dir: string): string {
  const sessions = Array.from({ length: PEERS }, (_, i) => `protocol bgp p${i + 1} {
  local 198.18.0.1 as 64512; neighbor 198.18.1.${i + 1} as 64512; direct; passive on; hold time ${HOLD};
  ipv4 { import all; export where proto = "blocks4"; };
}`).join('\n');
  const conf = join(dir, 'bird.conf');
  writeFileSync(conf, `router id 198.18.0.1;
protocol device { scan time 10; }
protocol kernel kernel4 { ipv4 { import none; export where source = RTS_BGP; }; scan time 10; }
protocol static blocks4 { ipv4; route 10.244.0.0/26 blackhole; }
${sessions}
`);
  return conf;
}

interface Result { convergeMs: number; cpuConvergeMs: number; idleMiB: number; rssMiB: number; hwmMiB: number; steadyCpuPct: number }

async function measure(which: 'tether' | 'bird'): Promise<Result> {
  const prefix = `tbg${randomBytes(3).toString('hex')}`;
  const dir = mkdtempSync(join(tmpdir(), 'tbg-bench-'));
  const { sp, drv, spPath } = topology(prefix);
  let subject = 0;
  let driver: ReturnType<typeof spawn> | undefined;
  try {
    const protocol = which === 'tether' ? RTPROT_TETHER_BGP : 12;
    if (which === 'tether') {
      const child = spawn('ip', ['netns', 'exec', sp, ...tetherConfig(dir)], { stdio: 'ignore' });
      subject = child.pid!;
    } else {
      const pidFile = join(dir, 'bird.pid');
      const r = spawnSync('ip', ['netns', 'exec', sp, 'bird', '-c', birdConfig(dir), '-s', join(dir, 'bird.ctl'), '-P', pidFile]);
      if (r.status !== 0) throw new Error(`bird: ${r.stderr}`);
      subject = Number(readFileSync(pidFile, 'utf8'));
    }
    await sleep(1500); // listening, idle
    const before = sample(subject);
    const t0 = Date.now();
    driver = spawn('ip', ['netns', 'exec', drv, process.execPath, join(root, 'build/bench/bgp-driver.js'), String(PEERS), String(ROUTES), String(HOLD)], { stdio: ['pipe', 'inherit', 'inherit'] });
    driver.stdin!.on('error', () => {});
    const want = PEERS * ROUTES;
    while (kernelRoutes(spPath, protocol) < want) {
      if (Date.now() - t0 > 120_000) throw new Error(`${which}: ${kernelRoutes(spPath, protocol)} of ${want} kernel routes after 120 s`);
      await sleep(50);
    }
    const convergeMs = Date.now() - t0;
    const after = sample(subject);
    await sleep(STEADY_S * 1000);
    const steady = sample(subject);
    return {
      convergeMs, cpuConvergeMs: after.cpuMs - before.cpuMs, idleMiB: before.rssKiB / 1024, rssMiB: steady.rssKiB / 1024, hwmMiB: steady.hwmKiB / 1024,
      steadyCpuPct: ((steady.cpuMs - after.cpuMs) / (STEADY_S * 1000)) * 100,
    };
  } finally {
    driver?.stdin!.end();
    if (subject) {
      try { process.kill(subject, 'SIGTERM'); } catch { /* gone */ }
      for (let i = 0; i < 100; i++) {
        try { process.kill(subject, 0); await sleep(50); } catch { break; }
      }
    }
    if (driver) { const d = driver; await new Promise((r) => (d.exitCode !== null ? r(null) : d.once('exit', r))); }
    deleteNamedNetns(sp);
    deleteNamedNetns(drv);
    rmSync(dir, { recursive: true, force: true });
  }
}

export async function bgpBench(): Promise<BgpRow[]> {
  const a = await measure('tether');
  const b = await measure('bird');
  const row = (name: string, x: number, y: number, unit: string): BgpRow => ({ name, a: 'tether bgp-speaker (binary)', b: 'BIRD 2', sa: stats([x]), sb: stats([y]), unit });
  const what = `BGP ${PEERS} peers x ${ROUTES} routes`;
  return [
    row(`${what}: first connect to all in kernel`, a.convergeMs, b.convergeMs, 'ms'),
    row('  CPU spent converging (10 ms ticks)', a.cpuConvergeMs, b.cpuConvergeMs, 'ms'),
    row('  resident memory, idle (peers configured)', a.idleMiB, b.idleMiB, 'MiB'),
    row('  resident memory, converged', a.rssMiB, b.rssMiB, 'MiB'),
    row('  peak resident memory', a.hwmMiB, b.hwmMiB, 'MiB'),
    row(`  steady CPU (keepalives, ${STEADY_S} s)`, a.steadyCpuPct, b.steadyCpuPct, '%'),
  ];
}

// Standalone: node build/bench/bgp.js
if (process.argv[1] && fileURLToPath(import.meta.url) === resolve(process.argv[1])) {
  for (const r of await bgpBench()) process.stdout.write(`${r.name}: tether ${r.sa.median.toFixed(2)} ${r.unit}, BIRD ${r.sb.median.toFixed(2)} ${r.unit}\n`);
}
