import test from 'ava';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { IPAM_METHODS, NETWORK_METHODS } from '../../docker/api.js';
import { vethNames, type Dataplane } from '../../docker/dataplane.js';
import { foreignNetworks, isolationOf } from '../../docker/isolation.js';
import type { ForeignSpan } from '../../plugins/common/isolation.js';
import { IpamDriver } from '../../docker/ipam.js';
import { NetworkDriver, type MultiHost } from '../../docker/network.js';
import { DockerConfigError, parseDockerConfig } from '../../docker/config.js';
import type { Overlay } from '../../docker/overlay.js';
import { SharedNetworks } from '../../docker/shared.js';
import { FileKV } from '../../lib/store/file.js';
import { PluginServer, routes } from '../../docker/server.js';
import { DriverState, type NetworkRecord } from '../../docker/state.js';
import { createLogger } from '../../lib/log.js';

// The driver against every request a real dockerd 20.10 made (test/vectors/docker/basic.jsonl, captured
// from a working remote driver by ../shared/reference/docker), on a fake data plane.

interface Captured { seq: number; method: string; request: any; status: number; response: any }
const CAPTURED: Captured[] = readFileSync(fileURLToPath(new URL('../../../test/vectors/docker/basic.jsonl', import.meta.url)), 'utf8')
  .trim().split('\n').map((l) => JSON.parse(l) as Captured);

/** A data plane that keeps in memory what the kernel would hold, and can be told to fail. */
class FakeDataplane implements Dataplane {
  bridges = new Map<string, NetworkRecord>();
  veths = new Set<string>();
  fail: Partial<Record<'ensureNetwork' | 'createEndpoint', string>> = {};
  ensureNetwork(n: NetworkRecord) {
    this.bridges.set(n.bridge, n);
    if (this.fail.ensureNetwork) throw new Error(this.fail.ensureNetwork);
  }
  removeNetwork(n: NetworkRecord) { this.bridges.delete(n.bridge); }
  isolate() { /* elements only: nothing the fake keeps */ }
  /** The foreign spans last applied, and the local spans they were told to leave alone. */
  foreign: { spans: ForeignSpan[]; local: string[] } = { spans: [], local: [] };
  foreignSpans(spans: ForeignSpan[], local: string[]) { this.foreign = { spans, local }; }
  restoreEndpoint() { /* a device group: nothing the fake keeps */ }
  createEndpoint(_n: NetworkRecord, e: { hostVeth: string; sandboxVeth: string }) {
    if (this.fail.createEndpoint) throw new Error(this.fail.createEndpoint);
    this.veths.add(e.hostVeth);
    return { mac: '02:00:00:00:00:01' };
  }
  endpointPresent(e: { hostVeth: string }) { return this.veths.has(e.hostVeth); }
  removeEndpoint(e: { hostVeth: string }) { this.veths.delete(e.hostVeth); }
  published = new Map<string, unknown[]>();
  publish(_n: NetworkRecord, e: { endpointID: string }, m: unknown[]) { this.published.set(e.endpointID, m); }
  unpublish(_nid: string, eid: string) { this.published.delete(eid); }
  hostVeths() { return [...this.veths]; }
}

function driver(multi?: MultiHost) {
  const dir = mkdtempSync(join(tmpdir(), 'tether-docker-'));
  const state = new DriverState(dir);
  const dp = new FakeDataplane();
  const net = new NetworkDriver(state, dp, multi);
  const ipam = new IpamDriver(state, { stateDir: dir, nodeName: 'n1' });
  const server = new PluginServer(net, ipam, createLogger({ component: 'test', level: 'error' }));
  const call = async (method: string, body: unknown = null) => server.handle(`/${method}`, body === null ? '' : JSON.stringify(body));
  return { dir, state, dp, ipam, server, call, done: () => rmSync(dir, { recursive: true, force: true }) };
}

test('the captured dockerd session replays: every request is answered like the accepted answer, and nothing is left after network rm', async (t) => {
  const d = driver();
  const poolIDs = new Map<string, string>();
  for (const c of CAPTURED) {
    const req = c.request === null ? null : JSON.parse(JSON.stringify(c.request));
    // The reference IPAM's pool IDs and address space are its own; ours replace them.
    if (req && typeof req.PoolID === 'string') req.PoolID = poolIDs.get(req.PoolID) ?? req.PoolID;
    if (req && req.AddressSpace) req.AddressSpace = 'tether';
    const got = await d.call(c.method, req);
    // -p 8080:80 is published through tether's port mapping, for the endpoint that asked.
    if (c.method === 'NetworkDriver.ProgramExternalConnectivity' && req.Options['com.docker.network.portmap'].length) {
      t.deepEqual(d.dp.published.get(req.EndpointID), [{ hostPort: 8080, containerPort: 80, protocol: 'tcp' }]);
    }
    t.is(got.status, 200, `#${c.seq} ${c.method}: ${JSON.stringify(got.json)}`);
    const ans = got.json as any;
    switch (c.method) {
      case 'Plugin.Activate': t.deepEqual(ans.Implements.sort(), ['IpamDriver', 'NetworkDriver']); break;
      case 'NetworkDriver.GetCapabilities': t.deepEqual(ans, c.response); break;
      case 'IpamDriver.GetCapabilities': t.deepEqual(ans, c.response); break;
      case 'IpamDriver.GetDefaultAddressSpaces': t.deepEqual(ans, { LocalDefaultAddressSpace: 'tether', GlobalDefaultAddressSpace: 'tether-global' }); break;
      case 'IpamDriver.RequestPool':
        t.is(ans.Pool, c.response.Pool);
        poolIDs.set(c.response.PoolID, ans.PoolID);
        break;
      // Same addresses as the reference for the gateway and the --ip request; dynamic ones in the pool.
      case 'IpamDriver.RequestAddress':
        if (c.request.Address || c.request.Options) t.is(ans.Address, c.response.Address, `#${c.seq}`);
        else t.regex(ans.Address, /^10\.250\.0\.\d+\/24$/);
        break;
      case 'NetworkDriver.Join':
        t.is(ans.InterfaceName.DstPrefix, 'eth');
        t.true(d.dp.veths.has(ans.InterfaceName.SrcName.replace(/^tdc/, 'tdh')), 'the SrcName is the sandbox end of a veth the driver made');
        t.is(ans.Gateway, c.response.Gateway);
        t.false(ans.DisableGatewayService);
        break;
      case 'NetworkDriver.EndpointOperInfo': t.regex(ans.Value.hostInterface, /^tdh[0-9a-f]{12}$/); break;
      default: t.deepEqual(ans, c.response, `#${c.seq} ${c.method}`);
    }
  }
  t.is(d.dp.veths.size, 0);
  t.is(d.dp.bridges.size, 0);
  t.is(d.dp.published.size, 0, 'revoked');
  t.deepEqual(await d.state.networks(), []);
  t.deepEqual(await d.state.endpoints(), []);
  t.deepEqual(await d.state.pools(), []);
  d.done();
});

test('every method of both APIs is answered; anything else is a 404 with Err, a bad body a 400', async (t) => {
  // Each wire method reaches its own handler with the request body: spies in place of the two drivers.
  const calls: [string, string, unknown][] = [];
  const spy = (side: string) => new Proxy({}, { get: (_o, name) => (body: unknown) => { calls.push([side, String(name), body]); return { handled: `${side}.${String(name)}` }; } });
  const table = routes(spy('net') as NetworkDriver, spy('ipam') as IpamDriver, () => ({}));
  const want: Record<string, [string, string]> = {
    'NetworkDriver.GetCapabilities': ['net', 'capabilities'], 'NetworkDriver.CreateNetwork': ['net', 'createNetwork'], 'NetworkDriver.DeleteNetwork': ['net', 'deleteNetwork'],
    'NetworkDriver.AllocateNetwork': ['net', 'allocateNetwork'], 'NetworkDriver.FreeNetwork': ['net', 'freeNetwork'], 'NetworkDriver.CreateEndpoint': ['net', 'createEndpoint'],
    'NetworkDriver.EndpointOperInfo': ['net', 'endpointOperInfo'], 'NetworkDriver.DeleteEndpoint': ['net', 'deleteEndpoint'], 'NetworkDriver.Join': ['net', 'join'],
    'NetworkDriver.Leave': ['net', 'leave'], 'NetworkDriver.DiscoverNew': ['net', 'discover'], 'NetworkDriver.DiscoverDelete': ['net', 'discover'],
    'NetworkDriver.ProgramExternalConnectivity': ['net', 'programExternalConnectivity'], 'NetworkDriver.RevokeExternalConnectivity': ['net', 'revokeExternalConnectivity'],
    'IpamDriver.GetCapabilities': ['ipam', 'capabilities'], 'IpamDriver.GetDefaultAddressSpaces': ['ipam', 'addressSpaces'], 'IpamDriver.RequestPool': ['ipam', 'requestPool'],
    'IpamDriver.ReleasePool': ['ipam', 'releasePool'], 'IpamDriver.RequestAddress': ['ipam', 'requestAddress'], 'IpamDriver.ReleaseAddress': ['ipam', 'releaseAddress'],
  };
  t.deepEqual(Object.keys(want).sort(), [...NETWORK_METHODS.map((m) => `NetworkDriver.${m}`), ...IPAM_METHODS.map((m) => `IpamDriver.${m}`)].sort(), 'the table above covers both APIs');
  for (const [method, [side, handler]] of Object.entries(want)) {
    calls.length = 0;
    const body = { probe: method };
    await table.get(method)!(body);
    // Methods whose handler takes no request get none; the others get the body as sent.
    t.deepEqual(calls.map(([s, h]) => [s, h]), [[side, handler]], method);
    if (!['capabilities', 'addressSpaces', 'freeNetwork', 'discover'].includes(handler)) t.is(calls[0][2], body, `${method} passes the request on`);
  }
  // And through the real drivers: nothing of either API is a 404, and what an empty request gets is an answer or a refusal in words.
  const d = driver();
  for (const m of [...NETWORK_METHODS.map((x) => `NetworkDriver.${x}`), ...IPAM_METHODS.map((x) => `IpamDriver.${x}`)]) {
    const r = await d.call(m, {});
    t.true([200, 400, 500].includes(r.status), `${m}: ${r.status}`);
    if (r.status !== 200) t.regex((r.json as any).Err, /^tether( IPAM)?: (NetworkID|PoolID) must be a string|^tether: AllocateNetwork is for swarm-scoped networks/, m);
  }
  const unknown = await d.call('VolumeDriver.Create', {});
  t.is(unknown.status, 404);
  t.regex((unknown.json as any).Err, /not an endpoint of the NetworkDriver or IpamDriver/);
  const bad = await d.server.handle('/NetworkDriver.Join', '{not json');
  t.is(bad.status, 400);
  t.regex((bad.json as any).Err, /not JSON/);
  const none = await d.server.handle('/NetworkDriver.CreateNetwork', '');
  t.is(none.status, 400);
  t.regex((none.json as any).Err, /needs a JSON object body/);
  d.done();
});

const NID = 'a'.repeat(64);
const EID = (n: number) => n.toString(16).padStart(64, 'e');

async function network(d: ReturnType<typeof driver>, o: { subnet?: string; range?: string; gateway?: string; options?: Record<string, unknown>; id?: string } = {}) {
  const pool = await d.call('IpamDriver.RequestPool', { AddressSpace: 'tether', Pool: o.subnet ?? '10.30.0.0/24', SubPool: o.range ?? '', Options: {}, V6: false });
  if (pool.status !== 200) return { pool, net: pool };
  const PoolID = (pool.json as any).PoolID;
  const gw = await d.call('IpamDriver.RequestAddress', { PoolID, Address: o.gateway ?? '', Options: { RequestAddressType: 'com.docker.network.gateway' } });
  const net = await d.call('NetworkDriver.CreateNetwork', {
    NetworkID: o.id ?? NID, Options: { 'com.docker.network.generic': {}, ...o.options }, IPv4Data: [{ AddressSpace: 'tether', Pool: (pool.json as any).Pool, Gateway: (gw.json as any).Address }], IPv6Data: [],
  });
  return { PoolID, gateway: (gw.json as any).Address as string, pool, net };
}

test('--ip-range: dynamic addresses come from the range, --ip may be anywhere in the subnet, the gateway is the range\'s first', async (t) => {
  const d = driver();
  const n = await network(d, { subnet: '10.31.0.0/16', range: '10.31.5.0/24' });
  t.is(n.gateway, '10.31.5.1/16');
  const a = await d.call('IpamDriver.RequestAddress', { PoolID: n.PoolID, Address: '', Options: null });
  t.regex((a.json as any).Address, /^10\.31\.5\.\d+\/16$/);
  const b = await d.call('IpamDriver.RequestAddress', { PoolID: n.PoolID, Address: '10.31.200.7', Options: null });
  t.is((b.json as any).Address, '10.31.200.7/16');
  const again = await d.call('IpamDriver.RequestAddress', { PoolID: n.PoolID, Address: '10.31.200.7', Options: null });
  t.is(again.status, 500);
  t.is((again.json as any).Err, 'tether IPAM: 10.31.200.7 is already in use on this network');
  const outside = await d.call('IpamDriver.RequestAddress', { PoolID: n.PoolID, Address: '10.32.0.1', Options: null });
  t.regex((outside.json as any).Err, /10\.32\.0\.1 is not in the network's subnet 10\.31\.0\.0\/16/);
  // Released, the address can be asked for again (docker rm, then run --ip).
  t.is((await d.call('IpamDriver.ReleaseAddress', { PoolID: n.PoolID, Address: '10.31.200.7' })).status, 200);
  t.is(((await d.call('IpamDriver.RequestAddress', { PoolID: n.PoolID, Address: '10.31.200.7', Options: null })).json as any).Address, '10.31.200.7/16');
  t.deepEqual((await d.ipam.held())[0].addresses.sort(), [(a.json as any).Address.split('/')[0], '10.31.200.7'].sort());
  d.done();
});

test('refusals a person can act on, and nothing half made', async (t) => {
  const d = driver();
  const errOf = (r: { json: unknown }) => (r.json as any).Err as string;
  const bad = await network(d, { options: { 'com.docker.network.generic': { foo: 'bar' } } });
  t.regex(errOf(bad.net), /unknown option -o foo=bar; tether networks take -o mtu=N/);
  t.is(d.dp.bridges.size, 0);
  t.regex(errOf((await network(d, { subnet: '10.30.0.0/24', id: 'b'.repeat(64) })).pool), /overlaps 10\.30\.0\.0\/24, the pool of another network/);
  const mtu = await d.call('NetworkDriver.CreateNetwork', { NetworkID: 'c'.repeat(64), Options: { 'com.docker.network.generic': { mtu: '12' } }, IPv4Data: [{ AddressSpace: 'x', Pool: '10.40.0.0/24', Gateway: '10.40.0.1/24' }], IPv6Data: [] });
  t.regex(errOf(mtu), /-o mtu=12 must be a whole number from 68 to 65535/);
  t.regex(errOf(await d.call('NetworkDriver.CreateNetwork', { NetworkID: 'c'.repeat(64), Options: { 'com.docker.network.generic': { mode: 'ipvlan' } }, IPv4Data: [{ AddressSpace: 'x', Pool: '10.40.0.0/24', Gateway: '10.40.0.1/24' }], IPv6Data: [] })), /-o mode=ipvlan is not available/);
  t.regex(errOf(await d.call('IpamDriver.RequestPool', { AddressSpace: 'tether', Pool: '', SubPool: '', Options: {}, V6: true })), /IPv6 network needs its subnet/);
  t.regex(errOf(await d.call('IpamDriver.RequestPool', { AddressSpace: 'tether', Pool: '10.50.0.1/24', SubPool: '', Options: {}, V6: false })), /host bits set; use the network address 10\.50\.0\.0\/24/);

  // The data plane failing at network creation leaves no record and no bridge.
  d.dp.fail.ensureNetwork = 'no bridge today';
  const failed = await d.call('NetworkDriver.CreateNetwork', { NetworkID: 'd'.repeat(64), Options: {}, IPv4Data: [{ AddressSpace: 'x', Pool: '10.41.0.0/24', Gateway: '10.41.0.1/24' }], IPv6Data: [] });
  t.regex(errOf(failed), /cannot create network dddddddddddd: no bridge today/);
  t.falsy(await d.state.network('d'.repeat(64)));
  t.false([...d.dp.bridges.keys()].some((b) => b.startsWith('tdk-ddd')));
  d.dp.fail = {};

  // An endpoint whose veth cannot be made leaves no record.
  const n = await network(d, { subnet: '10.60.0.0/24', id: 'f'.repeat(64) });
  t.is(n.net.status, 200);
  d.dp.fail.createEndpoint = 'out of veths';
  const ep = await d.call('NetworkDriver.CreateEndpoint', { NetworkID: 'f'.repeat(64), EndpointID: EID(1), Interface: { Address: '10.60.0.2/24', AddressIPv6: '', MacAddress: '' }, Options: {} });
  t.is(ep.status, 500);
  t.regex(errOf(ep), /out of veths/);
  t.deepEqual(await d.state.endpoints(), []);
  d.dp.fail = {};
  t.regex(errOf(await d.call('NetworkDriver.Join', { NetworkID: 'f'.repeat(64), EndpointID: EID(9), SandboxKey: '/x', Options: {} })), /endpoint eeeeeeeeeeee of network ffffffffffff is unknown/);
  t.regex(errOf(await d.call('NetworkDriver.CreateEndpoint', { NetworkID: '9'.repeat(64), EndpointID: EID(2), Interface: { Address: '10.60.0.3/24', AddressIPv6: '', MacAddress: '' }, Options: {} })), /network 999999999999 is unknown to this driver/);
  // Teardown of what is already gone succeeds.
  for (const m of ['Leave', 'DeleteEndpoint', 'RevokeExternalConnectivity']) t.is((await d.call(`NetworkDriver.${m}`, { NetworkID: 'f'.repeat(64), EndpointID: EID(7) })).status, 200, m);
  t.is((await d.call('NetworkDriver.DeleteNetwork', { NetworkID: '8'.repeat(64) })).status, 200);
  d.done();
});

test('--internal networks get no gateway, no docker_gwbridge and no masquerade', async (t) => {
  const d = driver();
  const n = await network(d, { subnet: '10.70.0.0/24', options: { 'com.docker.network.internal': true } });
  t.is(n.net.status, 200);
  t.is((await d.call('NetworkDriver.CreateEndpoint', { NetworkID: NID, EndpointID: EID(1), Interface: { Address: '10.70.0.2/24', AddressIPv6: '', MacAddress: '' }, Options: {} })).status, 200);
  const j = (await d.call('NetworkDriver.Join', { NetworkID: NID, EndpointID: EID(1), SandboxKey: '/x', Options: {} })).json as any;
  t.is(j.Gateway, undefined);
  t.true(j.DisableGatewayService);
  t.false((await d.state.network(NID))!.masquerade);
  d.done();
});

// ---- -o mode=vxlan: one network across hosts, on a fake overlay and a shared store on disk (the netns
// test runs it on tetherd's etcd with two real dockerds).

const POOL = '10.244.0.0/16';
const overlayOf = (node: string, subnet: string): Overlay => ({ network: 'lab', pool: POOL, subnet, mtu: 1450, node });
const vxlanCreate = (id: string, pool: string, gateway: string, generic: Record<string, string> = {}, extra: Record<string, unknown> = {}) => ({
  NetworkID: id.repeat(64 / id.length), Options: { 'com.docker.network.generic': { mode: 'vxlan', ...generic }, ...extra },
  IPv4Data: [{ AddressSpace: 'tether', Pool: pool, Gateway: gateway }], IPv6Data: [],
});

test('-o mode=vxlan: the first host records the definition, a second with the same joins, another subnet is refused naming both and leaves nothing; the last host out removes it', async (t) => {
  const storeDir = mkdtempSync(join(tmpdir(), 'tether-shared-'));
  const shared = new SharedNetworks(() => new FileKV(join(storeDir, 'kv')));
  const a = driver({ overlay: () => overlayOf('n1', '10.244.1.0/24'), shared });
  const b = driver({ overlay: () => overlayOf('n2', '10.244.2.0/24'), shared });
  t.is((await a.call('NetworkDriver.CreateNetwork', vxlanCreate('a', POOL, '10.244.1.1/24'))).status, 200);
  const rec = (await a.state.networks())[0];
  t.like(rec, { mode: 'vxlan', mtu: 1450, overlay: { name: 'lab', host: 'n1' } }, 'the overlay\'s MTU, the overlay\'s name');
  t.like((await shared.get('lab')).definition, { mode: 'vxlan', subnet: POOL, createdBy: 'n1' });
  t.is((await a.call('NetworkDriver.CreateNetwork', vxlanCreate('a', POOL, '10.244.1.1/24'))).status, 200, 'a repeated create is harmless');

  t.is((await b.call('NetworkDriver.CreateNetwork', vxlanCreate('b', POOL, '10.244.2.1/24'))).status, 200);
  t.deepEqual((await shared.get('lab')).hosts, ['n1', 'n2']);
  const other = await b.call('NetworkDriver.CreateNetwork', vxlanCreate('c', '10.99.0.0/16', '10.99.0.1/16'));
  t.is(other.status, 500);
  t.is((other.json as any).Err, 'tether: network "lab" is already defined across hosts as -o mode=vxlan --subnet 10.244.0.0/16 (created on n1); '
    + 'this host asked for -o mode=vxlan --subnet 10.99.0.0/16; create it with the same definition, or remove it on every host first');
  const c = driver({ overlay: () => overlayOf('n3', '10.244.3.0/24'), shared });
  const mtu = await c.call('NetworkDriver.CreateNetwork', vxlanCreate('d', POOL, '10.244.3.1/24', { mtu: '1400' }));
  t.regex((mtu.json as any).Err, /defined across hosts as -o mode=vxlan --subnet 10\.244\.0\.0\/16 \(created on n1\); this host asked for -o mode=vxlan --subnet 10\.244\.0\.0\/16 -o mtu=1400;/, 'any difference counts');
  t.deepEqual(await c.state.networks(), []);
  c.done();
  t.is((await b.state.networks()).length, 1, 'the refused ones left no record');
  t.is(b.dp.bridges.size, 1, 'nor a bridge');
  t.deepEqual((await shared.get('lab')).hosts, ['n1', 'n2'], 'nor a member');

  t.is((await a.call('NetworkDriver.DeleteNetwork', { NetworkID: 'a'.repeat(64) })).status, 200);
  t.deepEqual((await shared.get('lab')).hosts, ['n2'], 'n1 left, the definition stays');
  t.truthy((await shared.get('lab')).definition);
  t.is((await b.call('NetworkDriver.DeleteNetwork', { NetworkID: 'b'.repeat(64) })).status, 200);
  t.deepEqual(await shared.get('lab'), { hosts: [] }, 'the last host out removed it');
  a.done(); b.done(); rmSync(storeDir, { recursive: true, force: true });
});

test('-o mode=vxlan: containers get a route to the whole pool; what cannot work is refused in words', async (t) => {
  const storeDir = mkdtempSync(join(tmpdir(), 'tether-shared-'));
  const shared = new SharedNetworks(() => new FileKV(join(storeDir, 'kv')));
  const a = driver({ overlay: () => overlayOf('n1', '10.244.1.0/24'), shared });
  const err = async (body: unknown) => ((await a.call('NetworkDriver.CreateNetwork', body)).json as any).Err as string;
  t.is(await err(vxlanCreate('e', '10.50.0.0/16', '10.50.0.1/16')), 'tether: -o mode=vxlan: --subnet 10.50.0.0/16 is not the pool of tetherd\'s overlay "lab" (10.244.0.0/16); give --subnet 10.244.0.0/16');
  t.regex(await err(vxlanCreate('e', POOL, '10.244.0.1/16')), /needs --ipam-driver tether and no --gateway: each host's gateway is the first address of its own subnet \(10\.244\.1\.0\/24 on this host\), not 10\.244\.0\.1\/16/);
  t.regex(await err({ ...vxlanCreate('e', POOL, '10.244.1.1/24', {}, { 'com.docker.network.enable_ipv6': true }), IPv6Data: [{ AddressSpace: 'tether', Pool: 'fd00:1::/64', Gateway: 'fd00:1::1/64' }] }), /-o mode=vxlan networks are IPv4 only/);
  t.regex(await err(vxlanCreate('e', POOL, '10.244.1.1/24', { mtu: '1500' })), /-o mtu=1500 is larger than tetherd's VXLAN MTU 1450/);
  t.regex(await err({ ...vxlanCreate('e', POOL, '10.244.1.1/24'), Options: { 'com.docker.network.generic': {} } }), /--subnet 10\.244\.0\.0\/16 is tetherd's VXLAN overlay "lab": create it with -o mode=vxlan/);
  t.deepEqual(await shared.get('lab'), { hosts: [] }, 'no refused one was recorded');
  t.deepEqual(await a.state.networks(), []);
  t.is(a.dp.bridges.size, 0);

  t.is((await a.call('NetworkDriver.CreateNetwork', vxlanCreate('e', POOL, '10.244.1.1/24'))).status, 200);
  const eid = 'f'.repeat(64);
  t.is((await a.call('NetworkDriver.CreateEndpoint', { NetworkID: 'e'.repeat(64), EndpointID: eid, Interface: { Address: '10.244.1.2/24', AddressIPv6: '', MacAddress: '' }, Options: {} })).status, 200);
  const joined = await a.call('NetworkDriver.Join', { NetworkID: 'e'.repeat(64), EndpointID: eid, SandboxKey: '/x', Options: {} });
  t.like(joined.json, { Gateway: '10.244.1.1', StaticRoutes: [{ Destination: POOL, RouteType: 0, NextHop: '10.244.1.1' }] });

  const alone = driver();
  t.regex(((await alone.call('NetworkDriver.CreateNetwork', vxlanCreate('e', POOL, '10.244.1.1/24'))).json as any).Err, /needs the store the hosts share: start tetherd docker-plugin with --config naming tetherd's "etcd"/);
  a.done(); alone.done(); rmSync(storeDir, { recursive: true, force: true });
});

test('docker-plugin config: "etcd" as tetherd\'s, "vxlanStateFile"; bad values named', (t) => {
  t.deepEqual(parseDockerConfig('{"etcd": {"endpoints": ["unix:///run/etcd.sock"], "prefix": "/lab/"}, "vxlanStateFile": "/run/tether/vxlan.json"}', 'f.json'),
    { logFile: undefined, logLevel: undefined, nodeName: undefined, etcd: { endpoints: ['unix:///run/etcd.sock'], prefix: '/lab', tls: undefined, username: undefined, password: undefined, timeoutMs: 4000 }, vxlanStateFile: '/run/tether/vxlan.json' });
  t.throws(() => parseDockerConfig('{"etcd": {"endpoints": ["etcd:2379"]}}', 'f.json'), { instanceOf: DockerConfigError, message: /^f\.json: "etcd\.endpoints" must be a non-empty list of URLs such as .*, got \["etcd:2379"\]$/ });
  t.throws(() => parseDockerConfig('{"vxlanStateFile": "rel.json"}', 'f.json'), { instanceOf: DockerConfigError, message: 'f.json: "vxlanStateFile" must be an absolute path' });
});

test('-o mode=bgp: tether IPAM\'s pool turns routed at CreateNetwork (/32s from tetherd\'s IPAM network); Join gives the link-local gateway; refusals in words', async (t) => {
  const storeDir = mkdtempSync(join(tmpdir(), 'tether-shared-'));
  const shared = new SharedNetworks(() => new FileKV(join(storeDir, 'kv')));
  const multi = { overlay: () => { throw new Error('no VXLAN here'); }, shared, routed: { network: 'pods', node: 'n1' } };
  const a = driver(multi);
  const create = (id: string, generic: Record<string, string> = { mode: 'bgp' }) => a.call('NetworkDriver.CreateNetwork', {
    NetworkID: id.repeat(64), Options: { 'com.docker.network.generic': generic }, IPv4Data: [{ AddressSpace: 'tether', Pool: '10.60.0.0/16', Gateway: '10.60.0.1/16' }], IPv6Data: [],
  });
  t.regex(((await create('a')).json as any).Err, /-o mode=bgp needs --ipam-driver tether: the addresses must come from the blocks tetherd announces/, 'Docker\'s own IPAM: refused');
  const pool = await a.call('IpamDriver.RequestPool', { AddressSpace: 'tether', Pool: '10.60.0.0/16', SubPool: '', Options: {}, V6: false });
  t.is(pool.status, 200);
  t.is((await create('a')).status, 200);
  t.like((await a.state.pools())[0], { pool: '10.60.0.0/16', routed: { network: 'pods', node: 'n1' } });
  t.like((await shared.get('pods')).definition, { mode: 'bgp', subnet: '10.60.0.0/16', createdBy: 'n1' });
  t.like((await a.state.networks())[0], { mode: 'bgp', overlay: { name: 'pods', host: 'n1' } });
  const eid = '1'.repeat(64);
  t.is((await a.call('NetworkDriver.CreateEndpoint', { NetworkID: 'a'.repeat(64), EndpointID: eid, Interface: { Address: '10.60.0.7/32', AddressIPv6: '', MacAddress: '' }, Options: {} })).status, 200);
  const joined = await a.call('NetworkDriver.Join', { NetworkID: 'a'.repeat(64), EndpointID: eid, SandboxKey: '/x', Options: {} });
  t.deepEqual(joined.json, { InterfaceName: { SrcName: vethNames(eid).sandboxVeth, DstPrefix: 'eth' }, StaticRoutes: [{ Destination: '169.254.1.1/32', RouteType: 1 }], DisableGatewayService: false, Gateway: '169.254.1.1' });

  const b = driver(multi);
  await b.call('IpamDriver.RequestPool', { AddressSpace: 'tether', Pool: '10.61.0.0/16', SubPool: '', Options: {}, V6: false });
  const other = await b.call('NetworkDriver.CreateNetwork', { NetworkID: 'b'.repeat(64), Options: { 'com.docker.network.generic': { mode: 'bgp' } }, IPv4Data: [{ AddressSpace: 'tether', Pool: '10.61.0.0/16', Gateway: '10.61.0.1/16' }], IPv6Data: [] });
  t.regex((other.json as any).Err, /network "pods" is already defined across hosts as -o mode=bgp --subnet 10\.60\.0\.0\/16 \(created on n1\); this host asked for -o mode=bgp --subnet 10\.61\.0\.0\/16/);
  t.falsy((await b.state.pools())[0].routed, 'the refused network did not turn its pool routed');
  const alone = driver();
  t.regex(((await alone.call('NetworkDriver.CreateNetwork', { NetworkID: 'c'.repeat(64), Options: { 'com.docker.network.generic': { mode: 'bgp' } }, IPv4Data: [{ AddressSpace: 'tether', Pool: '10.62.0.0/16', Gateway: '10.62.0.1/16' }], IPv6Data: [] })).json as any).Err,
    /-o mode=bgp needs tetherd in BGP mode and the store the hosts share/);
  t.throws(() => parseDockerConfig('{"bgp": {"ipamNetwork": "pods"}}', 'f.json'), { instanceOf: DockerConfigError, message: 'f.json: "bgp" needs "etcd" (tetherd\'s)' });
  t.throws(() => parseDockerConfig('{"etcd": {"endpoints": ["unix:///e.sock"]}, "bgp": {"network": "pods"}}', 'f.json'), { instanceOf: DockerConfigError, message: /"bgp" must be \{"ipamNetwork": NAME\}/ });
  a.done(); b.done(); alone.done(); rmSync(storeDir, { recursive: true, force: true });
});

test('--internal across hosts: Join gives no default route, only the network\'s pool (vxlan: via the bridge; bgp: via the link-local gateway)', async (t) => {
  const storeDir = mkdtempSync(join(tmpdir(), 'tether-shared-'));
  const shared = new SharedNetworks(() => new FileKV(join(storeDir, 'kv')));
  const v = driver({ overlay: () => overlayOf('n1', '10.244.1.0/24'), shared });
  const internal = { 'com.docker.network.internal': true };
  t.is((await v.call('NetworkDriver.CreateNetwork', vxlanCreate('e', POOL, '10.244.1.1/24', {}, internal))).status, 200);
  t.like((await shared.get('lab')).definition, { internal: true, masquerade: false });
  const eid = 'f'.repeat(64);
  await v.call('NetworkDriver.CreateEndpoint', { NetworkID: 'e'.repeat(64), EndpointID: eid, Interface: { Address: '10.244.1.2/24', AddressIPv6: '', MacAddress: '' }, Options: {} });
  const vj = (await v.call('NetworkDriver.Join', { NetworkID: 'e'.repeat(64), EndpointID: eid, SandboxKey: '/x', Options: {} })).json as any;
  t.is(vj.Gateway, undefined, 'no default route');
  t.true(vj.DisableGatewayService);
  t.deepEqual(vj.StaticRoutes, [{ Destination: POOL, RouteType: 0, NextHop: '10.244.1.1' }]);

  const b = driver({ overlay: () => { throw new Error('no VXLAN here'); }, shared, routed: { network: 'pods', node: 'n1' } });
  await b.call('IpamDriver.RequestPool', { AddressSpace: 'tether', Pool: '10.60.0.0/16', SubPool: '', Options: {}, V6: false });
  t.is((await b.call('NetworkDriver.CreateNetwork', { NetworkID: 'a'.repeat(64), Options: { 'com.docker.network.generic': { mode: 'bgp' }, ...internal }, IPv4Data: [{ AddressSpace: 'tether', Pool: '10.60.0.0/16', Gateway: '10.60.0.1/16' }], IPv6Data: [] })).status, 200);
  await b.call('NetworkDriver.CreateEndpoint', { NetworkID: 'a'.repeat(64), EndpointID: eid, Interface: { Address: '10.60.0.7/32', AddressIPv6: '', MacAddress: '' }, Options: {} });
  const bj = (await b.call('NetworkDriver.Join', { NetworkID: 'a'.repeat(64), EndpointID: eid, SandboxKey: '/x', Options: {} })).json as any;
  t.is(bj.Gateway, undefined, 'no default route');
  t.deepEqual(bj.StaticRoutes, [{ Destination: '169.254.1.1/32', RouteType: 1 }, { Destination: '10.60.0.0/16', RouteType: 0, NextHop: '169.254.1.1' }]);
  v.done(); b.done(); rmSync(storeDir, { recursive: true, force: true });
});

test('-o mode=bgp -o name=: several routed networks, each shared under its name, isolated as routed networks of that name; overlapping subnets refused across hosts; -o allowNetworks makes a pair both ways', async (t) => {
  const storeDir = mkdtempSync(join(tmpdir(), 'tether-shared-'));
  const shared = new SharedNetworks(() => new FileKV(join(storeDir, 'kv')));
  const multi = { overlay: () => { throw new Error('no VXLAN here'); }, shared, routed: { network: 'pods', node: 'n1' } };
  const a = driver(multi);
  const create = async (id: string, pool: string, generic: Record<string, string>) => {
    await a.call('IpamDriver.RequestPool', { AddressSpace: 'tether', Pool: pool, SubPool: '', Options: {}, V6: false });
    return a.call('NetworkDriver.CreateNetwork', { NetworkID: id.repeat(64), Options: { 'com.docker.network.generic': { mode: 'bgp', ...generic } }, IPv4Data: [{ AddressSpace: 'tether', Pool: pool, Gateway: `${pool.split('/')[0].replace(/0$/, '1')}/16` }], IPv6Data: [] });
  };
  t.is((await create('a', '10.60.0.0/16', { name: 'web' })).status, 200);
  t.is((await create('b', '10.61.0.0/16', { name: 'db', allowNetworks: 'web' })).status, 200);
  t.is((await create('c', '10.62.0.0/16', {})).status, 200, 'one without -o name is tetherd\'s IPAM network\'s');
  t.deepEqual([...(await shared.definitions()).keys()].sort(), ['db', 'pods', 'web']);
  const nets = await a.state.networks();
  const [web, db, pods] = ['a', 'b', 'c'].map((id) => nets.find((n) => n.id === id.repeat(64))!);
  t.deepEqual(isolationOf(web, nets), { member: { routed: 'web' }, isolate: true, internal: false, icc: true, allowBridges: [], allowNetworks: ['db'], spans: ['10.60.0.0/16'] }, 'allowed by db: the pair on web\'s side too');
  t.like(isolationOf(db, nets), { member: { routed: 'db' }, allowNetworks: ['web'], spans: ['10.61.0.0/16'] });
  t.like(isolationOf(pods, nets), { member: { routed: 'pods' }, allowNetworks: [] });

  const b = driver({ ...multi, routed: { network: 'pods', node: 'n2' } });
  await b.call('IpamDriver.RequestPool', { AddressSpace: 'tether', Pool: '10.60.128.0/17', SubPool: '', Options: {}, V6: false });
  const overlap = await b.call('NetworkDriver.CreateNetwork', { NetworkID: 'd'.repeat(64), Options: { 'com.docker.network.generic': { mode: 'bgp', name: 'api' } }, IPv4Data: [{ AddressSpace: 'tether', Pool: '10.60.128.0/17', Gateway: '10.60.128.1/17' }], IPv6Data: [] });
  t.is((overlap.json as any).Err, 'tether: -o mode=bgp --subnet 10.60.128.0/17 overlaps 10.60.0.0/16 of network "web" (created on n1); pick another --subnet, or give -o name=web to join that network');
  t.false((await shared.definitions()).has('api'), 'the refused one recorded nothing');

  const bad = async (generic: Record<string, string>) => ((await a.call('NetworkDriver.CreateNetwork', { NetworkID: 'e'.repeat(64), Options: { 'com.docker.network.generic': generic }, IPv4Data: [{ AddressSpace: 'tether', Pool: '10.70.0.0/24', Gateway: '10.70.0.1/24' }], IPv6Data: [] })).json as any).Err as string;
  t.regex(await bad({ name: 'x' }), /-o name= names a -o mode=bgp network across hosts; a bridge network takes none/);
  t.regex(await bad({ mode: 'bgp', name: 'no spaces' }), /-o name=no spaces must be 1 to 64 letters/);
  t.regex(await bad({ allowBridges: 'way-too-long-bridge-name' }), /-o allowBridges=way-too-long-bridge-name: "way-too-long-bridge-name" /);
  a.done(); b.done(); rmSync(storeDir, { recursive: true, force: true });
});

test('-o mode=bgp across hosts: each host learns the networks it has none of (subnet, allowed pairs from any host\'s -o allowNetworks) at CreateNetwork, DeleteNetwork and Tether.Refresh; gone once undefined', async (t) => {
  const storeDir = mkdtempSync(join(tmpdir(), 'tether-shared-'));
  const shared = new SharedNetworks(() => new FileKV(join(storeDir, 'kv')));
  const on = (node: string) => driver({ overlay: () => { throw new Error('no VXLAN here'); }, shared, routed: { network: 'pods', node } });
  const [h1, h2] = [on('n1'), on('n2')];
  const create = async (d: typeof h1, id: string, pool: string, generic: Record<string, string>) => {
    await d.call('IpamDriver.RequestPool', { AddressSpace: 'tether', Pool: pool, SubPool: '', Options: {}, V6: false });
    const r = await d.call('NetworkDriver.CreateNetwork', { NetworkID: id.repeat(64), Options: { 'com.docker.network.generic': { mode: 'bgp', ...generic } }, IPv4Data: [{ AddressSpace: 'tether', Pool: pool, Gateway: `${pool.split('/')[0].replace(/0$/, '1')}/16` }], IPv6Data: [] });
    t.is(r.status, 200, JSON.stringify(r.json));
  };
  const spans = (d: typeof h1) => d.dp.foreign.spans.map((f) => `${f.subnet} ${f.allowed.map((m) => ('bridge' in m ? `bridge ${m.bridge}` : m.routed)).join(',')}`);
  await create(h1, 'a', '10.60.0.0/16', { name: 'web' });
  await create(h1, 'c', '10.63.0.0/16', { name: 'api', allowNetworks: 'db' });
  t.deepEqual(spans(h1), [], 'n1 alone: nothing foreign');
  await create(h2, 'b', '10.61.0.0/16', { name: 'db' });
  t.deepEqual(spans(h2), ['10.63.0.0/16 api,db', '10.60.0.0/16 web'], 'n2 learnt n1\'s networks at its CreateNetwork; api allows db on n1 (recorded with n1\'s membership)');
  t.deepEqual(h2.dp.foreign.local, ['10.61.0.0/16'], 'its own span is told apart');
  t.deepEqual(((await shared.networks()).get('api')), { definition: (await shared.get('api')).definition!, hosts: ['n1'], allowNetworks: ['db'] });
  const refreshed = await h1.call('Tether.Refresh');
  t.deepEqual(refreshed.json, { Foreign: [{ Name: 'db', Subnet: '10.61.0.0/16', Allowed: ['api', 'db'] }] }, 'n1 learns db on Tether.Refresh; its api allows it');
  t.deepEqual(spans(h1), ['10.61.0.0/16 api,db']);

  // The same subnet as a local span is never foreign; nor is a network this host has.
  const nets = await h1.state.networks();
  t.deepEqual(foreignNetworks(nets, new Map([['x', { definition: { mode: 'bgp', subnet: '10.60.1.0/24', internal: false, masquerade: true, createdBy: 'n9', createdAt: '' }, hosts: ['n9'], allowNetworks: [] }]])), [], 'overlapping a local span: left out');

  await h1.call('NetworkDriver.DeleteNetwork', { NetworkID: 'a'.repeat(64) });
  t.deepEqual(spans(h1), ['10.61.0.0/16 api,db'], 'web gone from n1 and from the store: not foreign either');
  t.deepEqual(((await h2.call('Tether.Refresh')).json as any).Foreign.map((f: any) => f.Name), ['api'], 'n2 drops web once its definition is gone');
  await h1.call('NetworkDriver.DeleteNetwork', { NetworkID: 'c'.repeat(64) });
  t.deepEqual(spans(h1), ['10.61.0.0/16 db'], 'api gone on n1: db is still foreign there, no longer allowed with api');
  await h2.call('NetworkDriver.DeleteNetwork', { NetworkID: 'b'.repeat(64) });
  t.deepEqual(spans(h2), [], 'n2: nothing foreign left');
  t.deepEqual(((await h1.call('Tether.Refresh')).json as any).Foreign, []);
  t.deepEqual(spans(h1), [], 'n1: nothing foreign left');
  h1.done(); h2.done(); rmSync(storeDir, { recursive: true, force: true });
});
