import type { ChildProcess } from 'node:child_process';
import { childProcess } from '../lib/builtin.js';
import { closeSync, mkdtempSync, openSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { EtcdKV } from '../lib/store/etcd.js';

/** A real etcd (Debian etcd-server) on loopback or a Unix socket, started by a test, the benchmark or a lab, and stopped by its PID. */
export interface EtcdServer {
  endpoint: string;
  pid: number;
  /** Its working directory (data, socket, log), removed by stop(). */
  dir: string;
  stop(): Promise<void>;
}

const randomPort = () => 20000 + Math.floor(Math.random() * 20000);

/**
 * With unix: true the client listens on a Unix socket (etcd names it "localhost:PORT" in its working
 * directory), reachable from plugins running in any network namespace.
 */
/** Files of a throwaway PKI: a CA, a server certificate for 127.0.0.1, a client certificate. */
export interface TestPki { ca: string; serverCert: string; serverKey: string; clientCert: string; clientKey: string }

/** Makes a CA and server/client certificates with openssl, for TLS tests only. */
export function makeTestPki(dir: string): TestPki {
  const run = (args: string[]) => {
    const r = childProcess().spawnSync('openssl', args, { cwd: dir, encoding: 'utf8' });
    if (r.status !== 0) throw new Error(`openssl ${args[0]}: ${r.stderr}`);
  };
  writeFileSync(join(dir, 'san.cnf'), 'subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth,clientAuth\n');
  run(['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days', '2', '-subj', '/CN=tether-test-ca', '-keyout', 'ca.key', '-out', 'ca.crt']);
  for (const who of ['server', 'client']) {
    run(['req', '-newkey', 'rsa:2048', '-nodes', '-subj', `/CN=tether-test-${who}`, '-keyout', `${who}.key`, '-out', `${who}.csr`]);
    run(['x509', '-req', '-in', `${who}.csr`, '-CA', 'ca.crt', '-CAkey', 'ca.key', '-CAcreateserial', '-days', '2', '-extfile', 'san.cnf', '-out', `${who}.crt`]);
  }
  return { ca: join(dir, 'ca.crt'), serverCert: join(dir, 'server.crt'), serverKey: join(dir, 'server.key'), clientCert: join(dir, 'client.crt'), clientKey: join(dir, 'client.key') };
}

/**
 * detached: etcd outlives this process (a lab that `cnictl lab up` leaves running): its own session,
 * output to etcd.log in its directory, not holding this process's event loop; stopped later by PID.
 */
export async function startEtcd(o: { unix?: boolean; tls?: TestPki; detached?: boolean } = {}): Promise<EtcdServer> {
  for (let attempt = 0; attempt < 5; attempt++) {
    const dir = mkdtempSync(join(tmpdir(), 'tether-etcd-'));
    const client = randomPort();
    const peer = client + 1;
    const listen = o.unix ? `unix://localhost:${client}` : `${o.tls ? 'https' : 'http'}://127.0.0.1:${client}`;
    const endpoint = o.unix ? `unix://${join(dir, `localhost:${client}`)}` : listen;
    const log = o.detached ? openSync(join(dir, 'etcd.log'), 'a') : undefined;
    const child: ChildProcess = childProcess().spawn('etcd', [
      '--name', 'tt', '--data-dir', join(dir, 'data'),
      '--listen-client-urls', listen, '--advertise-client-urls', listen,
      '--listen-peer-urls', `http://127.0.0.1:${peer}`, '--initial-advertise-peer-urls', `http://127.0.0.1:${peer}`,
      '--initial-cluster', `tt=http://127.0.0.1:${peer}`, '--log-level', 'error',
      ...(o.tls ? ['--cert-file', o.tls.serverCert, '--key-file', o.tls.serverKey, '--trusted-ca-file', o.tls.ca, '--client-cert-auth'] : []),
    ], o.detached
      ? { stdio: ['ignore', log!, log!], cwd: dir, detached: true }
      : { stdio: ['ignore', 'ignore', 'pipe'], cwd: dir });
    if (log !== undefined) { closeSync(log); child.unref(); }
    let exited = false;
    child.on('exit', () => { exited = true; });
    const stop = async () => {
      if (!exited) {
        child.kill('SIGTERM');
        await new Promise<void>((r) => { const t = setTimeout(() => { child.kill('SIGKILL'); r(); }, 3000); child.on('exit', () => { clearTimeout(t); r(); }); });
      }
      rmSync(dir, { recursive: true, force: true });
    };
    const kv = new EtcdKV({ endpoints: [endpoint], prefix: '/probe/', timeoutMs: 500, tls: o.tls ? { ca: o.tls.ca, cert: o.tls.clientCert, key: o.tls.clientKey } : undefined });
    const until = Date.now() + 10_000;
    while (!exited && Date.now() < until) {
      try {
        await kv.get('x');
        return { endpoint, pid: child.pid!, dir, stop };
      } catch { await new Promise((r) => setTimeout(r, 100)); }
    }
    await stop(); // port taken or slow start: try other ports
  }
  throw new Error('could not start etcd (is the Debian package etcd-server installed?)');
}

export interface EtcdMember {
  name: string;
  endpoint: string;
  running(): boolean;
  /** The member's process, to freeze it (SIGSTOP: it keeps its port, accepts connections and answers nothing). */
  pid(): number | undefined;
  stop(): Promise<void>;
  start(): Promise<void>;
}

export interface EtcdCluster {
  members: EtcdMember[];
  endpoints: string[];
  destroy(): Promise<void>;
}

/**
 * An n-member etcd cluster on loopback ports, each member stoppable and restartable (same data). A
 * cluster that does not elect a leader in time (a taken port, a loaded machine) is removed and started
 * again on other ports, up to three times.
 */
export async function startEtcdCluster(n: number): Promise<EtcdCluster> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await startEtcdClusterOnce(n);
    } catch (e) {
      if (attempt >= 3) throw e;
    }
  }
}

async function startEtcdClusterOnce(n: number): Promise<EtcdCluster> {
  const dir = mkdtempSync(join(tmpdir(), 'tether-etcdc-'));
  const base = randomPort();
  const names = Array.from({ length: n }, (_, i) => `m${i}`);
  const client = (i: number) => `http://127.0.0.1:${base + 2 * i}`;
  const peer = (i: number) => `http://127.0.0.1:${base + 2 * i + 1}`;
  const initial = names.map((nm, i) => `${nm}=${peer(i)}`).join(',');
  const procs: (ChildProcess | undefined)[] = new Array(n).fill(undefined);
  const launch = (i: number) => {
    const child = childProcess().spawn('etcd', [
      '--name', names[i], '--data-dir', join(dir, names[i]),
      '--listen-client-urls', client(i), '--advertise-client-urls', client(i),
      '--listen-peer-urls', peer(i), '--initial-advertise-peer-urls', peer(i),
      '--initial-cluster', initial, '--initial-cluster-token', `tether-${base}`, '--initial-cluster-state', 'new',
      '--log-level', 'error',
    ], { stdio: ['ignore', 'ignore', 'ignore'] });
    procs[i] = child;
    child.on('exit', () => { if (procs[i] === child) procs[i] = undefined; });
  };
  const stopOne = (i: number) => new Promise<void>((resolve) => {
    const child = procs[i];
    if (!child) { resolve(); return; }
    child.kill('SIGCONT'); // a frozen member must be able to act on SIGTERM
    const t = setTimeout(() => child.kill('SIGKILL'), 3000);
    child.on('exit', () => { clearTimeout(t); resolve(); });
    child.kill('SIGTERM');
  });
  const healthy = async (endpoints: string[]) => {
    const kv = new EtcdKV({ endpoints, prefix: '/probe/', timeoutMs: 1000 });
    const until = Date.now() + 15_000;
    while (Date.now() < until) {
      try { await kv.txn({ if: [], put: [{ key: 'x', value: String(Date.now()) }] }); return; } catch { await new Promise((r) => setTimeout(r, 200)); }
    }
    throw new Error('etcd cluster did not become healthy');
  };
  names.forEach((_, i) => launch(i));
  const endpoints = names.map((_, i) => client(i));
  try { await healthy(endpoints); } catch (e) { await Promise.all(names.map((_, i) => stopOne(i))); rmSync(dir, { recursive: true, force: true }); throw e; }
  return {
    endpoints,
    members: names.map((name, i) => ({
      name, endpoint: client(i),
      running: () => !!procs[i],
      pid: () => procs[i]?.pid,
      stop: () => stopOne(i),
      start: async () => { if (!procs[i]) launch(i); await healthy([client(i)]); },
    })),
    destroy: async () => { await Promise.all(names.map((_, i) => stopOne(i))); rmSync(dir, { recursive: true, force: true }); },
  };
}
