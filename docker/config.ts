import { readFileSync } from 'node:fs';
import { isAbsolute } from 'node:path';
import { isLevel, type Level } from '../lib/log.js';

/** `tetherd docker-plugin --config FILE`: a JSON object; every key is optional, unknown ones are refused. */
export interface DockerPluginConfig {
  /** JSON lines log (else warnings and errors to stderr). */
  logFile?: string;
  logLevel?: Level;
  /** The node name IPAM blocks are claimed under (default: the host name). */
  nodeName?: string;
}

const KEYS = ['logFile', 'logLevel', 'nodeName'];

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
  return { logFile: o.logFile as string | undefined, logLevel: o.logLevel as Level | undefined, nodeName: o.nodeName as string | undefined };
}

export function readDockerConfig(file: string): DockerPluginConfig {
  let text: string;
  try { text = readFileSync(file, 'utf8'); } catch (e) { throw new DockerConfigError(`cannot read ${file}: ${(e as Error).message}`); }
  return parseDockerConfig(text, file);
}
