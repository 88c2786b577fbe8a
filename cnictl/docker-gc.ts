import type { ReconcileRequest, ReconcileResponse } from '../docker/api.js';
import { DEFAULT_SOCKET } from '../docker/state.js';

// `cnictl gc --docker`: what Docker still has, read from dockerd's own API, handed to the driver, which
// removes every endpoint, veth and address of its own that is not in it. The driver does the removing
// (it is the one writer of its state); cnictl only gathers the live set.

export const DEFAULT_DOCKER_HOST = 'unix:///var/run/docker.sock';

interface DockerNetwork {
  Id: string;
  Driver: string;
  IPAM: { Driver: string; Config: { Subnet?: string; Gateway?: string }[] | null };
  Containers: Record<string, { EndpointID: string; IPv4Address: string; IPv6Address: string }> | null;
}

function request(socketPath: string, method: 'GET' | 'POST', path: string, body?: string): Promise<{ status: number; text: string }> {
  const http = process.getBuiltinModule('node:http') as typeof import('node:http');
  return new Promise((resolve, reject) => {
    const req = http.request({ socketPath, method, path, timeout: 60_000, headers: body ? { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) } : {} }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, text: Buffer.concat(chunks).toString() }));
      res.on('error', reject);
    });
    req.on('timeout', () => req.destroy(new Error(`no answer from ${socketPath} within 60 s`)));
    req.on('error', (e) => reject(new Error(`${socketPath}: ${e.message}`)));
    req.end(body);
  });
}

async function getJSON<T>(socket: string, path: string): Promise<T> {
  const r = await request(socket, 'GET', path);
  if (r.status !== 200) throw new Error(`dockerd ${path}: HTTP ${r.status} ${r.text.trim()}`);
  return JSON.parse(r.text) as T;
}

/** The endpoints and addresses of every network that uses tether, as its driver or its IPAM. */
export async function dockerLiveSet(dockerHost: string): Promise<ReconcileRequest> {
  if (!dockerHost.startsWith('unix://')) throw new Error(`--docker-host must be unix:///path/to/docker.sock, got ${dockerHost}`);
  const socket = dockerHost.slice('unix://'.length);
  const list = await getJSON<{ Id: string }[]>(socket, '/networks');
  const live: ReconcileRequest = { Endpoints: [], Addresses: [] };
  for (const { Id } of list) {
    const n = await getJSON<DockerNetwork>(socket, `/networks/${Id}`);
    if (n.Driver !== 'tether' && n.IPAM?.Driver !== 'tether') continue;
    for (const c of Object.values(n.Containers ?? {})) {
      if (n.Driver === 'tether') live.Endpoints.push({ NetworkID: n.Id, EndpointID: c.EndpointID });
      for (const a of [c.IPv4Address, c.IPv6Address]) if (a) live.Addresses.push(a.split('/')[0]);
    }
    for (const cfg of n.IPAM?.Config ?? []) if (cfg.Gateway) live.Addresses.push(cfg.Gateway);
  }
  return live;
}

export async function reconcileDocker(o: { dockerHost?: string; driverSocket?: string; graceMs?: number }): Promise<ReconcileResponse> {
  const live = await dockerLiveSet(o.dockerHost ?? DEFAULT_DOCKER_HOST);
  if (o.graceMs !== undefined) live.GraceMs = o.graceMs;
  const r = await request(o.driverSocket ?? DEFAULT_SOCKET, 'POST', '/Tether.Reconcile', JSON.stringify(live));
  const body = JSON.parse(r.text) as ReconcileResponse & { Err?: string };
  if (r.status !== 200) throw new Error(body.Err ?? `the driver answered HTTP ${r.status}`);
  return body;
}
