import { randomBytes } from 'node:crypto';
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createOutside } from '../../conformance/lab.js';
import { runIn, type RunOutcome } from '../../conformance/spawn.js';
import { childProcess } from '../../lib/builtin.js';
import { Netlink } from '../../lib/netlink/handle.js';
import { createNamedNetns, deleteNamedNetns, inNetns, listNamedNetns } from '../../lib/netns/netns.js';

export const DIST = fileURLToPath(new URL('../../../dist/bin/', import.meta.url));
/** libcni's result cache: podman 4.3 has no setting for it, so its records land here (removed by `podman rm`). */
export const LIBCNI_CACHE = '/var/lib/cni/results';
const BUSYBOX = '/bin/busybox';
const APPLETS = ['sh', 'ip', 'ping', 'cat', 'ls', 'sleep', 'nc', 'wget', 'echo', 'true'];

/** The flags this machine needs (see /work/shared/reference/podman): runc, cgroupfs, ulimits under the hard limit. */
const RUN_FLAGS = ['--cap-add', 'NET_RAW', '--ulimit', 'nofile=1024:1024', '--ulimit', 'nproc=1024:1024'];

export interface PodmanRigOptions {
  /**
   * Run podman in this existing namespace (a path, e.g. a lab node's) instead of a throwaway one of the
   * rig's own; the rig then neither makes an `outside` namespace nor deletes this one.
   */
  host?: string;
}

/**
 * Podman (CNI backend) confined to a test: its storage, run and temp dirs, containers.conf (selected by
 * CONTAINERS_CONF), conf dir and IPAM data are in one temporary directory, and podman itself runs in a
 * throwaway host namespace (or a given one), so the bridges and rules the plugins make never reach this
 * machine's own. `outside` is one more namespace beyond a throwaway host, with no route back to the pods.
 */
export class PodmanRig {
  readonly prefix = `top${randomBytes(3).toString('hex')}`;
  readonly dir = mkdtempSync(join(tmpdir(), `${this.prefix}-podman-`));
  readonly confDir = join(this.dir, 'net.d');
  readonly dataDir = join(this.dir, 'ipam');
  readonly rootfs = join(this.dir, 'rootfs');
  readonly logFile = join(this.dir, 'tether.log');
  readonly host: string;
  readonly outside: { path: string; hostIP: string; outsideIP: string } | undefined;
  private readonly ownsHost: boolean;
  private readonly networks: string[] = [];
  private closed = false;

  constructor(o: PodmanRigOptions = {}) {
    this.ownsHost = !o.host;
    try {
      if (!existsSync(BUSYBOX)) throw new Error(`${BUSYBOX} is missing: install busybox-static (listed in .ci/run)`);
      for (const d of [this.confDir, this.dataDir, join(this.rootfs, 'bin'), ...['proc', 'sys', 'dev', 'etc', 'tmp'].map((d) => join(this.rootfs, d))]) mkdirSync(d, { recursive: true });
      copyFileSync(BUSYBOX, join(this.rootfs, 'bin', 'busybox'));
      for (const a of APPLETS) symlinkSync('busybox', join(this.rootfs, 'bin', a));
      const conf = join(this.dir, 'containers.conf');
      // File locks live in the rig's tmpdir. The default shm locks are one segment for every podman on the
      // machine, and a podman starting on a fresh tmpdir frees them all (its "refresh" after a reboot).
      writeFileSync(conf, [
        '[network]', 'network_backend = "cni"', `cni_plugin_dirs = [${JSON.stringify(DIST)}, "/usr/lib/cni"]`, `network_config_dir = ${JSON.stringify(this.confDir)}`,
        '[engine]', 'lock_type = "file"', '',
      ].join('\n'));
      // Podman reads it from the environment only; this process (one ava worker per file) is the test's own.
      process.env.CONTAINERS_CONF = conf;
      if (o.host) this.host = o.host;
      else {
        this.host = createNamedNetns(`${this.prefix}-host`);
        Netlink.within(this.host, (nl) => { nl.linkSet(nl.linkByName('lo')!.index, { up: true }); });
        this.outside = createOutside(this.host, `${this.prefix}-out`, `${this.prefix}o`);
      }
      process.once('exit', () => this.cleanup());
      for (const sig of ['SIGINT', 'SIGTERM'] as const) process.once(sig, () => { this.cleanup(); process.exit(130); });
    } catch (e) {
      this.close();
      throw e;
    }
  }

  /** Writes a conflist into the rig's conf dir; returns the network's name. */
  addNetwork(list: { name: string } & Record<string, unknown>): string {
    writeFileSync(join(this.confDir, `${list.name}.conflist`), JSON.stringify(list, null, 2));
    this.networks.push(list.name);
    return list.name;
  }

  podman(args: string[], timeoutMs = 60_000): Promise<RunOutcome> {
    return runIn(this.host, 'podman', [...this.flags(), ...args], timeoutMs);
  }

  /** podman, failing with its output when it fails. */
  async ok(args: string[], timeoutMs?: number): Promise<string> {
    const r = await this.podman(args, timeoutMs);
    if (r.status !== 0) throw new Error(`podman ${args.join(' ')}: ${r.timedOut ? 'timed out' : `exit ${r.status}`}\n${r.stdout}${r.stderr}`);
    return r.stdout;
  }

  /** A long-running container on a network, from the busybox root filesystem; extra: more `podman run` flags (-p ...). */
  run(name: string, network: string, cmd = ['/bin/sleep', '600'], extra: string[] = []): Promise<string> {
    return this.ok(['run', '-d', '--name', name, ...RUN_FLAGS, ...extra, '--network', network, '--rootfs', this.rootfs, ...cmd]);
  }

  /** A one-shot container (`run --rm`): its output. */
  runOnce(network: string, sh: string): Promise<string> {
    return this.ok(['run', '--rm', ...RUN_FLAGS, '--network', network, '--rootfs', this.rootfs, '/bin/sh', '-c', sh]);
  }

  exec(name: string, sh: string, timeoutMs = 20_000): Promise<RunOutcome> {
    return this.podman(['exec', name, '/bin/sh', '-c', sh], timeoutMs);
  }

  async inspect(name: string): Promise<any> {
    return JSON.parse(await this.ok(['inspect', name]))[0];
  }

  /** The path of libcni's cache record (holding tether's result) for an attachment. */
  cacheRecord(network: string, containerID: string, ifname = 'eth0'): string {
    return join(LIBCNI_CACHE, `${network}-${containerID}-${ifname}`);
  }

  private flags(): string[] {
    return ['--runtime', 'runc', '--cgroup-manager', 'cgroupfs', '--events-backend', 'file',
      '--root', join(this.dir, 'storage'), '--runroot', join(this.dir, 'run'), '--tmpdir', join(this.dir, 'tmp')];
  }

  /**
   * Removes every container, then the namespaces and files, by exact name. Synchronous, so it also runs
   * on SIGINT/SIGTERM and on exit (installed by the constructor). Safe to call twice.
   */
  cleanup(): string[] {
    if (this.closed) return [];
    const problems: string[] = [];
    if (existsSync(join(this.dir, 'storage'))) {
      const r = inNetns(this.host, () => childProcess().spawnSync('podman', [...this.flags(), 'rm', '-af', '-t', '0'], { encoding: 'utf8', timeout: 60_000 }));
      if (r.status !== 0) problems.push(`podman rm -af: ${r.error?.message ?? r.stderr.trim()}`);
    }
    this.close();
    return problems;
  }

  private close(): void {
    this.closed = true;
    for (const n of this.networks) {
      let names: string[] = [];
      try { names = readdirSync(LIBCNI_CACHE); } catch { /* no cache */ }
      for (const f of names) if (f.startsWith(`${n}-`)) rmSync(join(LIBCNI_CACHE, f), { force: true });
    }
    if (this.ownsHost) for (const n of [`${this.prefix}-out`, `${this.prefix}-host`]) { try { deleteNamedNetns(n); } catch { /* keep going */ } }
    rmSync(this.dir, { recursive: true, force: true });
  }

  leftovers(): string[] {
    return listNamedNetns().filter((n) => n.startsWith(`${this.prefix}-`));
  }
}
