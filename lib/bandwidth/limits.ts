import { CniError, ErrorCode } from '../cni/errors.js';
import { fieldOf } from '../cni/fields.js';

/**
 * A container's bandwidth limits (the `bandwidth` capability, the reference bandwidth plugin's fields):
 * rates in bits per second, bursts in bits. Ingress is what the container receives: a tbf on the host
 * end of its veth. Egress is what it sends: the host end's ingress is redirected to an ifb device of
 * its own, whose tbf shapes it (a policer would drop instead of queue, and TCP would settle far below
 * the rate). Netlink only. Acts in the calling thread's namespace (the host's).
 */
export interface BandwidthLimits {
  ingressRate?: number;
  ingressBurst?: number;
  egressRate?: number;
  egressBurst?: number;
}

const bad = (field: string, msg: string, v: unknown) => new CniError(ErrorCode.InvalidNetworkConfig, `invalid ${field}: ${msg}`, `${field}=${JSON.stringify(v)}`);

/** Reads a bandwidth object ({ingressRate, ingressBurst, egressRate, egressBurst}); null when it sets no limit. */
export function parseBandwidth(raw: unknown, field = 'runtimeConfig.bandwidth'): BandwidthLimits | null {
  if (raw === undefined || raw === null) return null;
  if (typeof raw !== 'object' || Array.isArray(raw)) throw bad(field, 'must be an object {ingressRate, ingressBurst, egressRate, egressBurst} (bits per second, bits)', raw);
  const o = raw as Record<string, unknown>;
  const out: BandwidthLimits = {};
  for (const k of ['ingressRate', 'ingressBurst', 'egressRate', 'egressBurst'] as const) {
    const v = fieldOf(o, k); // containerd 1.6 sends "IngressRate", ...
    if (v === undefined || v === 0) continue;
    if (typeof v !== 'number' || !Number.isInteger(v) || v < 0) throw bad(`${field}.${k}`, 'must be a whole number of bits (per second for a rate)', v);
    out[k] = v;
  }
  for (const dir of ['ingress', 'egress'] as const) {
    const rate = out[`${dir}Rate`];
    const burst = out[`${dir}Burst`];
    if ((rate === undefined) !== (burst === undefined)) throw bad(`${field}.${dir}${rate === undefined ? 'Rate' : 'Burst'}`, `is needed with ${dir}${rate === undefined ? 'Burst' : 'Rate'} (a token bucket has both)`, raw);
    if (rate !== undefined && rate < 8) throw bad(`${field}.${dir}Rate`, 'must be at least 8 bits per second', rate);
    if (burst !== undefined && burst < 8 * 1514) throw bad(`${field}.${dir}Burst`, `must hold at least one full frame (${8 * 1514} bits)`, burst);
  }
  return out.ingressRate || out.egressRate ? out : null;
}
