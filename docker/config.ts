import { readFileSync } from 'node:fs';
import { isAbsolute } from 'node:path';
import { CniError } from '../lib/cni/errors.js';
import { isLevel, type Level } from '../lib/log.js';
import { parseEtcd, type EtcdConfig } from '../ipam/config.js';

/** `tetherd docker-plugin --config FILE`: a JSON object; every key is optional, unknown ones are refused. */
export interface DockerPluginConfig {
  /** JSON lines log (else warnings and errors to stderr). */
  logFile?: string;
  logLevel?: Level;
  /** The node name IPAM blocks are claimed under (default: the host name). */
  nodeName?: string;
  /**
   * The etcd tetherd uses (same endpoints and prefix): where networks spanning hosts (-o mode=vxlan) keep
   * their definition and their addresses. Without it only -o mode=bridge is available.
   */
  etcd?: EtcdConfig;
  /** tetherd's node state file in VXLAN mode (its "stateFile"): the overlay pool and this node's subnet. */
  vxlanStateFile?: string;
  /** tetherd in BGP mode: its "ipam.network", whose blocks it announces (-o mode=bgp); nodeName must be tetherd's. */
  bgp?: { ipamNetwork: string };
}

const KEYS = ['logFile', 'logLevel', 'nodeName', 'etcd', 'vxlanStateFile', 'bgp'];

export class DockerConfigError extends Error {}

export function parseDockerConfig(text: string, file: string): DockerPluginConfig {
  let v: unknown;
  try { v = JSON.parse(text); } catch (e) { throw new DockerConfigError(`${file}: not JSON (${(e as Error).message})`); }
  if (!v || typeof v !== 'object' || Array.isArray(v)) throw new DockerConfigError(`${file}: must be a JSON object`);
  const o = v as Record<string, unknown>;
  for (const k of Object.keys(o)) if (!KEYS.includes(k)) throw new DockerConfigError(`${file}: unknown key "${k}" (known: ${KEYS.join(', ')})`);
  if (o.logFile !== undefined && (typeof o.logFile !== 'string' || !isAbsolute(o.logFile))) throw new DockerConfigError(`${file}: "logFile" must be an absolute path`);
  if (o.logLevel !== undefined && !isLevel(o.logLevel)) throw new DockerConfigError(`${file}: "logLevel" must be error, warn, info or debug`);
  if (o.nodeName !== undefined && (typeof o.nodeName !== 'string' || !o.nodeName)) throw new DockerConfigError(`${file}: "nodeName" must be a non-empty string`);
  if (o.vxlanStateFile !== undefined && (typeof o.vxlanStateFile !== 'string' || !isAbsolute(o.vxlanStateFile))) throw new DockerConfigError(`${file}: "vxlanStateFile" must be an absolute path`);
  const bgp = o.bgp as { ipamNetwork?: unknown } | undefined;
  if (bgp !== undefined && (typeof bgp !== 'object' || bgp === null || typeof bgp.ipamNetwork !== 'string' || !/^[A-Za-z0-9._-]{1,64}$/.test(bgp.ipamNetwork) || Object.keys(bgp).length !== 1)) {
    throw new DockerConfigError(`${file}: "bgp" must be {"ipamNetwork": NAME}, NAME being tetherd's "ipam.network"`);
  }
  if (bgp && o.etcd === undefined) throw new DockerConfigError(`${file}: "bgp" needs "etcd" (tetherd's)`);
  let etcd: EtcdConfig | undefined;
  try { etcd = parseEtcd(o.etcd, 'etcd'); } catch (e) {
    // The shared parser words it for a CNI network config; this is the plugin's own file.
    if (e instanceof CniError) throw new DockerConfigError(`${file}: ${e.message.replace(/^invalid network config: /, '')}`);
    throw e;
  }
  return {
    logFile: o.logFile as string | undefined, logLevel: o.logLevel as Level | undefined, nodeName: o.nodeName as string | undefined,
    ...(etcd ? { etcd } : {}), ...(o.vxlanStateFile ? { vxlanStateFile: o.vxlanStateFile as string } : {}),
    ...(bgp ? { bgp: { ipamNetwork: bgp.ipamNetwork as string } } : {}),
  };
}

export function readDockerConfig(file: string): DockerPluginConfig {
  let text: string;
  try { text = readFileSync(file, 'utf8'); } catch (e) { throw new DockerConfigError(`cannot read ${file}: ${(e as Error).message}`); }
  return parseDockerConfig(text, file);
}
