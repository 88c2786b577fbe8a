import { invalidConfig } from '../../lib/cni/errors.js';
import type { NetConf } from '../../lib/cni/types.js';
import { ifnameProblem } from '../../lib/cni/validate.js';

/** The isolation options tether-bridge and tether-bgp-route share (docs/ports-bandwidth-isolation.md). */
export interface IsolationOptions {
  /** "network" (default): traffic to other isolated tether networks is refused unless allowed; "none": no isolation. */
  isolation: 'network' | 'none';
  /** Bridges of tether-bridge networks this one exchanges traffic with. */
  allowBridges: string[];
  /** Names of tether-bgp-route networks this one exchanges traffic with. */
  allowNetworks: string[];
}

const strings = (v: unknown) => (Array.isArray(v) ? v.filter((b): b is string => typeof b === 'string') : []);

/** Reads the options; `strict` (ADD, CHECK) refuses bad values, DEL and GC take whatever is there. */
export function parseIsolationOptions(conf: NetConf, strict: boolean): IsolationOptions {
  if (strict) {
    if (conf.isolation !== undefined && conf.isolation !== 'network' && conf.isolation !== 'none') throw invalidConfig('isolation', 'must be "network" or "none"', conf.isolation);
    for (const [field, what, check] of [
      ['allowBridges', 'bridge names', ifnameProblem],
      ['allowNetworks', 'network names', (n: string) => (n ? null : 'must not be empty')],
    ] as const) {
      const v = conf[field];
      if (v === undefined) continue;
      if (!Array.isArray(v)) throw invalidConfig(field, `must be a list of ${what}`, v);
      for (const b of v) {
        const p = typeof b === 'string' ? check(b) : 'must be a string';
        if (p) throw invalidConfig(field, `entry ${JSON.stringify(b)} ${p}`, v);
      }
    }
  }
  return { isolation: conf.isolation === 'none' ? 'none' : 'network', allowBridges: strings(conf.allowBridges), allowNetworks: strings(conf.allowNetworks) };
}
