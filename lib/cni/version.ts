import { CniError, ErrorCode } from './errors.js';

/** The spec versions tether speaks, oldest first. */
export const SUPPORTED_VERSIONS = ['0.3.0', '0.3.1', '0.4.0', '1.0.0', '1.1.0'] as const;
export const CURRENT_VERSION = '1.1.0';

export function parseVersion(v: string): [number, number, number] | null {
  const m = /^(\d+)\.(\d+)\.(\d+)$/.exec(v);
  return m ? [Number(m[1]), Number(m[2]), Number(m[3])] : null;
}

export function compareVersions(a: string, b: string): number {
  const pa = parseVersion(a);
  const pb = parseVersion(b);
  if (!pa || !pb) throw new CniError(ErrorCode.IncompatibleVersion, `invalid version "${!pa ? a : b}"`);
  for (let i = 0; i < 3; i++) if (pa[i] !== pb[i]) return pa[i] - pb[i];
  return 0;
}

export const versionAtLeast = (v: string, min: string) => compareVersions(v, min) >= 0;

/** The config's version must be one the plugin lists exactly (spec: version negotiation). */
export function requireSupported(version: unknown, supported: readonly string[]): string {
  if (typeof version !== 'string' || !supported.includes(version)) {
    throw new CniError(
      ErrorCode.IncompatibleVersion,
      `incompatible CNI versions: config is "${String(version)}", plugin supports [${supported.join(' ')}]`,
      `config is "${String(version)}", plugin supports [${supported.join(', ')}]`,
    );
  }
  return version;
}

/** Runtime side: the highest of cniVersion and cniVersions that this runtime implements. */
export function pickVersion(cniVersion: unknown, cniVersions: unknown, implemented: readonly string[]): string | null {
  const candidates = new Set<string>();
  if (typeof cniVersion === 'string') candidates.add(cniVersion);
  if (Array.isArray(cniVersions)) for (const v of cniVersions) if (typeof v === 'string') candidates.add(v);
  let best: string | null = null;
  for (const v of candidates) {
    if (!implemented.includes(v)) continue;
    if (best === null || compareVersions(v, best) > 0) best = v;
  }
  return best;
}
