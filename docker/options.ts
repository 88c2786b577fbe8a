import { ifnameProblem } from '../lib/cni/validate.js';
import { cidrsOverlap, formatCIDR, parseCIDR, type CIDR } from '../lib/ip/addr.js';
import { Label, type CreateNetworkRequest, type IPAMData } from './api.js';
import { badRequest } from './errors.js';
import type { NetworkRecord } from './state.js';

// `docker network create -d tether [-o k=v] [--internal] [--ipv6]` into a network record. Every -o the
// driver does not know is refused: an option silently ignored is a network that is not what was asked.

/** -o keys, with the aliases Docker's own bridge driver uses. */
type OptionKey = 'mtu' | 'bridge' | 'masquerade' | 'mode' | 'name' | 'allowNetworks' | 'allowBridges';
const OPTION_KEYS: Record<string, OptionKey> = {
  mtu: 'mtu',
  [Label.mtu]: 'mtu',
  bridge: 'bridge',
  [Label.bridgeName]: 'bridge',
  masquerade: 'masquerade',
  'com.docker.network.bridge.enable_ip_masquerade': 'masquerade',
  mode: 'mode',
  // -o mode=bgp: the name the hosts share the network under (dockerd does not tell a driver its Docker name).
  name: 'name',
  // tether-bridge's and tether-bgp-route's allowNetworks/allowBridges, comma-separated.
  allowNetworks: 'allowNetworks',
  allowBridges: 'allowBridges',
};

/** A routed network's name, as tether-bgp-route networks and tetherd's IPAM networks are named. */
const NAME = /^[A-Za-z0-9._-]{1,64}$/;

function names(v: string | undefined, key: string, problem: (n: string) => string | null): string[] {
  const out = (v ?? '').split(',').map((x) => x.trim()).filter((x) => x);
  for (const n of out) {
    const p = problem(n);
    if (p) throw badRequest(`tether: -o ${key}=${v}: ${JSON.stringify(n)} ${p}`);
  }
  return [...new Set(out)].sort();
}

/**
 * bridge: one host. vxlan: one network across hosts over tetherd's VXLAN overlay (docker/overlay.ts).
 * bgp: across hosts, containers routed as /32s that tetherd in BGP mode announces.
 */
export const MODES = ['bridge', 'vxlan', 'bgp'] as const;

/** The default bridge name: "tdk-" and the first 11 hex digits of the network ID (the kernel's 15). */
export const bridgeNameOf = (networkID: string) => `tdk-${networkID.slice(0, 11)}`;

function bool(v: unknown, key: string): boolean {
  if (v === true || v === 'true' || v === '1') return true;
  if (v === false || v === 'false' || v === '0' || v === undefined || v === '') return false;
  throw badRequest(`tether: option ${key} must be true or false, got ${JSON.stringify(v)}`);
}

function pools(data: IPAMData[] | null, family: 4 | 6): { pool: CIDR; gateway: CIDR }[] {
  return (data ?? []).map((d, i) => {
    const pool = typeof d.Pool === 'string' ? parseCIDR(d.Pool) : null;
    if (!pool || pool.ip.family !== family) throw badRequest(`tether: IPv${family}Data[${i}].Pool must be an IPv${family} CIDR, got ${JSON.stringify(d.Pool)}`);
    const gateway = typeof d.Gateway === 'string' && d.Gateway ? parseCIDR(d.Gateway) : null;
    // The IPAM driver names the gateway; without one (--ipam-driver null) the network has no L3 on the bridge.
    if (!gateway) throw badRequest(`tether: IPv${family}Data[${i}] has no gateway for pool ${d.Pool}; tether bridges need one (do not use --ipam-driver null)`);
    return { pool, gateway };
  });
}

/** Validates a CreateNetwork and turns it into the record the driver keeps, checked against the networks it has. */
export function networkFromRequest(r: CreateNetworkRequest, existing: NetworkRecord[]): NetworkRecord {
  if (typeof r.NetworkID !== 'string' || !/^[0-9a-f]{12,64}$/.test(r.NetworkID)) throw badRequest(`tether: NetworkID must be Docker's hex network ID, got ${JSON.stringify(r.NetworkID)}`);
  const o = r.Options ?? {};
  const generic = (o[Label.generic] ?? {}) as Record<string, unknown>;
  if (typeof generic !== 'object' || Array.isArray(generic)) throw badRequest(`tether: ${Label.generic} must be a map of -o options`);
  const opts: Partial<Record<OptionKey, string>> = {};
  const given: Record<string, string> = {};
  for (const [k, v] of Object.entries(generic)) {
    const key = OPTION_KEYS[k];
    if (!key) throw badRequest(`tether: unknown option -o ${k}=${String(v)}; tether networks take -o mtu=N, -o bridge=NAME, -o masquerade=true|false, -o mode=${MODES.join('|')}, -o name=NAME (mode=bgp), -o allowNetworks=A,B, -o allowBridges=A,B`);
    if (typeof v !== 'string') throw badRequest(`tether: option -o ${k} must be a string, got ${JSON.stringify(v)}`);
    opts[key] = v;
    given[k] = v;
  }
  const mode = opts.mode ?? 'bridge';
  if (!(MODES as readonly string[]).includes(mode)) {
    throw badRequest(`tether: -o mode=${mode} is not available in this driver yet; modes: ${MODES.join(', ')} (bridge: one host; vxlan, bgp: across hosts, with tetherd in that mode)`);
  }
  let mtu: number | undefined;
  if (opts.mtu !== undefined) {
    mtu = Number(opts.mtu);
    if (!Number.isInteger(mtu) || mtu < 68 || mtu > 65535) throw badRequest(`tether: -o mtu=${opts.mtu} must be a whole number from 68 to 65535`);
  }
  const bridge = opts.bridge ?? bridgeNameOf(r.NetworkID);
  const problem = ifnameProblem(bridge);
  if (problem) throw badRequest(`tether: -o bridge=${bridge}: the name ${problem}`);
  const internal = bool(o[Label.internal], '--internal');
  const ipv6 = bool(o[Label.enableIPv6], '--ipv6');
  const v4 = pools(r.IPv4Data, 4);
  const v6 = ipv6 ? pools(r.IPv6Data, 6) : [];
  if (!v4.length) throw badRequest('tether: the network has no IPv4 pool; give --subnet, or use tether\'s IPAM (--ipam-driver tether)');
  if (ipv6 && !v6.length) throw badRequest('tether: --ipv6 needs an IPv6 pool: add --subnet with an IPv6 CIDR such as fd00:1::/64');
  for (const other of existing) {
    if (other.id === r.NetworkID) continue;
    if (other.bridge === bridge) throw badRequest(`tether: bridge ${bridge} is already the bridge of network ${other.id.slice(0, 12)}; pick another -o bridge=`);
    for (const mine of [...v4, ...v6]) {
      for (const theirs of [...other.ipv4, ...other.ipv6]) {
        if (cidrsOverlap(mine.pool, parseCIDR(theirs.pool)!)) {
          throw badRequest(`tether: subnet ${formatCIDR(mine.pool)} overlaps ${theirs.pool} of network ${other.id.slice(0, 12)} on this host; pick another --subnet`);
        }
      }
    }
  }
  if (opts.name !== undefined && mode !== 'bgp') throw badRequest(`tether: -o name= names a -o mode=bgp network across hosts; a ${mode} network takes none`);
  if (opts.name !== undefined && !NAME.test(opts.name)) throw badRequest(`tether: -o name=${opts.name} must be 1 to 64 letters, digits, '.', '_' or '-'`);
  const allowNetworks = names(opts.allowNetworks, 'allowNetworks', (n) => (NAME.test(n) ? null : 'is not a network name (letters, digits, \'.\', \'_\', \'-\')'));
  const allowBridges = names(opts.allowBridges, 'allowBridges', (n) => ifnameProblem(n));
  const masquerade = !internal && (opts.masquerade === undefined ? true : bool(opts.masquerade, '-o masquerade'));
  const rec = (p: { pool: CIDR; gateway: CIDR }) => ({ pool: formatCIDR(p.pool), gateway: formatCIDR(p.gateway) });
  return {
    id: r.NetworkID, ...(mode === 'vxlan' || mode === 'bgp' ? { mode } : {}), bridge, ipv4: v4.map(rec), ipv6: v6.map(rec), ...(mtu ? { mtu } : {}), internal, masquerade, options: given,
    ...(opts.name !== undefined ? { name: opts.name } : {}), ...(allowNetworks.length ? { allowNetworks } : {}), ...(allowBridges.length ? { allowBridges } : {}),
    createdAt: new Date().toISOString(),
  };
}

/** Two records describe the same network (a CreateNetwork repeated after a lost answer). */
export function sameNetwork(a: NetworkRecord, b: NetworkRecord): boolean {
  const strip = (n: NetworkRecord) => JSON.stringify({ ...n, createdAt: '' });
  return strip(a) === strip(b);
}
