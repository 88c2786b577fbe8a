import { closeSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createNamedNetns, deleteNamedNetns, listNamedNetns, netnsPath, openNetns } from '../lib/netns/netns.js';
import { Netlink } from '../lib/netlink/handle.js';
import { IFA_F_NODAD } from '../lib/netlink/constants.js';
import { parseCIDR, parseIP } from '../lib/ip/addr.js';
import { openStore } from '../ipam/store.js';
import { Allocator } from '../ipam/allocator.js';
import { parseIpamConfig } from '../ipam/config.js';
import type { NetConf } from '../lib/cni/types.js';
import type { Result } from '../lib/cni/types.js';
import { CniRuntime, type AttachmentSpec } from '../lib/libcni/runtime.js';
import { parseNetworkList, type NetworkList } from '../lib/libcni/conf.js';

/** Everything a run created, so it can all be removed: on success, on failure, and on SIGINT. */
const live = new Set<Lab>();

/** Labs of this process not yet closed (for tests: none may outlive its run). */
export const openLabs = () => live.size;
let handlersInstalled = false;

function installSignalHandlers(): void {
  if (handlersInstalled) return;
  handlersInstalled = true;
  // Also on any other way out (an uncaught error): removal is synchronous, so it works in 'exit'.
  process.on('exit', () => { for (const lab of live) lab.close(); });
  for (const sig of ['SIGINT', 'SIGTERM'] as const) {
    process.once(sig, () => {
      for (const lab of live) lab.close();
      process.stderr.write(`conformance: interrupted by ${sig}; removed everything the run created\n`);
      process.exit(130);
    });
  }
}

/** A namespace outside the node and the addresses of the link between it and the node. */
export interface Outside {
  path: string;
  hostIP: string;
  outsideIP: string;
  hostIP6: string;
  outsideIP6: string;
}

export interface Container {
  name: string;
  path: string;
  id: string;
}

/**
 * A namespace outside the node, reachable from the host namespace over a veth (198.18.x.0/30), with no
 * route back to the pods: a container reaches it only if its traffic leaves with the host's address.
 * The caller owns the namespace `name` (deletes it by that name); the veth goes with it.
 */
export function createOutside(host: string, name: string, hostLink: string): Outside {
  const path = createNamedNetns(name);
  try {
    const third = crypto.getRandomValues(new Uint8Array(1))[0];
    const hostIP = `198.18.${third}.1`;
    const outsideIP = `198.18.${third}.2`;
    const hostIP6 = `2001:db8:${third.toString(16)}::1`;
    const outsideIP6 = `2001:db8:${third.toString(16)}::2`;
    // No DAD: a tentative address would make the first seconds of every IPv6 test fail.
    const nodad = { flags: IFA_F_NODAD };
    const fd = openNetns(path);
    try {
      Netlink.within(host, (nl) => {
        const link = nl.linkAdd({ kind: 'veth', name: hostLink, up: true, peer: { name: 'eth0', netnsFd: fd } })!;
        nl.addrAdd(link.index, parseCIDR(`${hostIP}/30`)!);
        nl.addrAdd(link.index, parseCIDR(`${hostIP6}/64`)!, nodad);
      });
    } finally { closeSync(fd); }
    Netlink.within(path, (out) => {
      const eth0 = out.linkByName('eth0')!.index;
      out.addrAdd(eth0, parseCIDR(`${outsideIP}/30`)!);
      out.addrAdd(eth0, parseCIDR(`${outsideIP6}/64`)!, nodad);
      out.linkSet(eth0, { up: true });
      out.linkSet(out.linkByName('lo')!.index, { up: true });
    });
    return { path, hostIP, outsideIP, hostIP6, outsideIP6 };
  } catch (e) {
    deleteNamedNetns(name);
    throw e;
  }
}

/** IPAM types whose reservations live as one file per address under dataDir/<network> (host-local's layout). */
const FILE_IPAM = new Set(['host-local', 'tether-ipam']);

/**
 * A throwaway "host" namespace where plugins run (so no bridge, route or rule lands on the real host),
 * container namespaces created on demand, a private result cache and IPAM data directory.
 * Names share a random prefix; close() deletes exactly those names.
 */
export class Lab {
  readonly prefix: string;
  readonly host: string;
  readonly dir: string;
  readonly list: NetworkList;
  readonly runtime: CniRuntime;
  ipamDataDir?: string;
  ipamType?: string;
  private readonly containers: Container[] = [];
  private counter = 0;
  private closed = false;
  private outside?: Outside;

  /** `namePrefix` starts every namespace and link name of the lab (random hex digits follow). */
  constructor(list: NetworkList, path: string[], timeoutMs = 30_000, namePrefix = 'tcf') {
    installSignalHandlers();
    this.prefix = `${namePrefix}${Buffer.from(crypto.getRandomValues(new Uint8Array(3))).toString('hex')}`;
    this.dir = mkdtempSync(join(tmpdir(), `${this.prefix}-`));
    live.add(this);
    try {
      this.host = netnsPath(this.prefix + '-host');
      createNamedNetns(`${this.prefix}-host`);
      this.setLoopbackUp(this.host);
      // Keep IPAM state inside the run's directory so runs never share (or leak) reservations.
      const plugins = list.plugins.map((p) => {
        const ipam = p.ipam as Record<string, unknown> | undefined;
        if (!ipam || !FILE_IPAM.has(ipam.type as string)) return p;
        this.ipamDataDir = join(this.dir, 'ipam');
        this.ipamType = ipam.type as string;
        return { ...p, ipam: { ...ipam, dataDir: this.ipamDataDir } };
      });
      const raw = JSON.parse(list.bytes.toString()) as Record<string, unknown>;
      this.list = parseNetworkList(Buffer.from(JSON.stringify({ ...raw, plugins })), list.file);
      this.runtime = new CniRuntime({ path, cacheDir: join(this.dir, 'cache'), timeoutMs, pluginNetns: this.host });
    } catch (e) {
      this.close();
      throw e;
    }
  }

  /** The same network under another name with its plugins' fields changed (e.g. a tiny range). */
  variant(suffix: string, change: (plugin: Record<string, unknown>) => Record<string, unknown>): NetworkList {
    const raw = JSON.parse(this.list.bytes.toString()) as { name: string; plugins: Record<string, unknown>[] };
    return parseNetworkList(Buffer.from(JSON.stringify({ ...raw, name: `${raw.name}-${suffix}`, plugins: raw.plugins.map(change) })));
  }

  /** The same network at another spec version (for the per-version cases). */
  withVersion(version: string): NetworkList {
    const raw = JSON.parse(this.list.bytes.toString()) as Record<string, unknown>;
    delete raw.cniVersions;
    return parseNetworkList(Buffer.from(JSON.stringify({ ...raw, cniVersion: version })));
  }

  private setLoopbackUp(path: string): void {
    Netlink.within(path, (nl) => {
      const lo = nl.linkByName('lo');
      if (lo && !lo.up) nl.linkSet(lo.index, { up: true });
    });
  }

  newContainer(): Container {
    const name = `${this.prefix}-c${++this.counter}`;
    const path = createNamedNetns(name);
    this.setLoopbackUp(path);
    const c = { name, path, id: `${this.prefix}-ctr${this.counter}` };
    this.containers.push(c);
    return c;
  }

  removeContainer(c: Container): void { deleteNamedNetns(c.name); }

  /**
   * A namespace outside the node, reachable from the host namespace over a veth (198.18.x.0/30 and
   * 2001:db8:x::/64), with no route back to the pods: a container reaches it only if its traffic
   * leaves with the host's address. Made once per lab; later calls return the same one.
   */
  newOutside(): Outside {
    this.outside ??= this.makeOutside();
    return this.outside;
  }

  private makeOutside(): Outside {
    const name = `${this.prefix}-out`;
    const o = createOutside(this.host, name, `${this.prefix}o`);
    this.containers.push({ name, path: o.path, id: '' });
    return o;
  }

  spec(c: Container, ifname = 'eth0'): AttachmentSpec {
    return { containerID: c.id, netns: c.path, ifname };
  }

  attach(c: Container, list = this.list, ifname = 'eth0'): Promise<Result> {
    return this.runtime.add(list, this.spec(c, ifname));
  }

  detach(c: Container, list = this.list, ifname = 'eth0'): Promise<void> {
    return this.runtime.del(list, this.spec(c, ifname));
  }

  /** Addresses IPAM holds now, or null when the IPAM type keeps its state somewhere the harness cannot read. */
  async reservations(network = this.list.name): Promise<string[] | null> {
    if (!this.ipamDataDir) return null;
    if (this.ipamType === 'tether-ipam') {
      const plugin = this.list.plugins.find((p) => (p.ipam as { type?: string } | undefined)?.type === 'tether-ipam')!;
      const cfg = parseIpamConfig({ ...plugin, name: network, cniVersion: this.list.cniVersion } as NetConf);
      const kv = openStore(cfg);
      try {
        return (await new Allocator(kv, cfg).list()).map((a) => a.ip).sort();
      } finally { kv.close(); }
    }
    try {
      return readdirSync(join(this.ipamDataDir, network)).filter((f) => parseIP(f.replace(/_/g, ':')) !== null).sort();
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') return [];
      throw e;
    }
  }

  /** Deletes every namespace and file of this run, by exact name. Safe to call twice. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    for (const c of this.containers) { try { deleteNamedNetns(c.name); } catch { /* keep going */ } }
    try { deleteNamedNetns(`${this.prefix}-host`); } catch { /* keep going */ }
    rmSync(this.dir, { recursive: true, force: true });
    live.delete(this);
  }

  /** Names under /run/netns still carrying this run's prefix (must be none after close). */
  leftovers(): string[] {
    return listNamedNetns().filter((n) => n.startsWith(`${this.prefix}-`));
  }
}
