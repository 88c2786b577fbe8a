import { execFileSync } from 'node:child_process';
import { mkdirSync, unlinkSync } from 'node:fs';
import { createServer } from 'node:http';
import { dirname } from 'node:path';

// The floor of any libnetwork remote driver, for the Docker bench: a NetworkDriver and IpamDriver that do
// no work at all while containers come and go. Every answer comes from memory; addresses from a counter,
// never stored; the veth pairs Join hands out are made before the timed runs. It runs on the same runtime
// (Bun) and HTTP server (node:http) as tetherd's driver, in dockerd's namespaces. What `docker run` costs
// with it is what the remote protocol itself costs (dockerd's plugin calls and the round trips): no remote
// driver can be faster. Not a driver anyone should use: nothing is connected to anything.
//
//   bun build/bench/docker-floor-driver.js SOCKET PAIRS GATEWAY   (one network, a /24 whose .1 is GATEWAY)

const [socket, pairsArg, gateway] = process.argv.slice(2);
const pairs = Number(pairsArg);
if (!socket || !Number.isInteger(pairs) || pairs < 1 || !gateway) throw new Error('usage: docker-floor-driver SOCKET PAIRS GATEWAY');

// Made with ip(8) before dockerd calls: none of it is timed.
for (let i = 0; i < pairs; i++) execFileSync('ip', ['link', 'add', `tfh${i}`, 'type', 'veth', 'peer', 'name', `tfc${i}`]);
let nextPair = 0;
const nextHost = new Map<string, number>();

type Body = Record<string, any>;
const GATEWAY_TYPE = 'com.docker.network.gateway';
const octets = (pool: string) => pool.split('/')[0].split('.').map(Number);

const answers: Partial<Record<string, (b: Body) => unknown>> = {
  'Plugin.Activate': () => ({ Implements: ['NetworkDriver', 'IpamDriver'] }),
  'NetworkDriver.GetCapabilities': () => ({ Scope: 'local', ConnectivityScope: 'local' }),
  'IpamDriver.GetCapabilities': () => ({ RequiresMACAddress: false }),
  'IpamDriver.GetDefaultAddressSpaces': () => ({ LocalDefaultAddressSpace: 'floor-local', GlobalDefaultAddressSpace: 'floor-global' }),
  'IpamDriver.RequestPool': (b) => ({ PoolID: b.Pool, Pool: b.Pool, Data: {} }),
  'IpamDriver.ReleasePool': () => ({}),
  // A /24 pool: .1 is the gateway, containers get .2, .3, ... (the bench runs far fewer than 250).
  'IpamDriver.RequestAddress': (b) => {
    const [a, c, d] = octets(b.PoolID);
    if (b.Options?.RequestAddressType === GATEWAY_TYPE) return { Address: `${a}.${c}.${d}.1/24`, Data: {} };
    const host = nextHost.get(b.PoolID) ?? 2;
    nextHost.set(b.PoolID, host + 1);
    return { Address: `${a}.${c}.${d}.${host}/24`, Data: {} };
  },
  'IpamDriver.ReleaseAddress': () => ({}),
  'NetworkDriver.CreateNetwork': () => ({}),
  'NetworkDriver.DeleteNetwork': () => ({}),
  'NetworkDriver.CreateEndpoint': () => ({}),
  'NetworkDriver.DeleteEndpoint': () => ({}),
  'NetworkDriver.EndpointOperInfo': () => ({ Value: {} }),
  // A gateway, as tether's and Docker's bridge give: without one dockerd adds a docker_gwbridge endpoint.
  'NetworkDriver.Join': () => ({ InterfaceName: { SrcName: `tfc${nextPair++}`, DstPrefix: 'eth' }, Gateway: gateway, StaticRoutes: [] }),
  'NetworkDriver.Leave': () => ({}),
  'NetworkDriver.ProgramExternalConnectivity': () => ({}),
  'NetworkDriver.RevokeExternalConnectivity': () => ({}),
  'NetworkDriver.DiscoverNew': () => ({}),
  'NetworkDriver.DiscoverDelete': () => ({}),
};

mkdirSync(dirname(socket), { recursive: true });
try { unlinkSync(socket); } catch { /* none yet */ }
createServer((req, res) => {
  let text = '';
  req.on('data', (c: Buffer) => { text += c.toString(); });
  req.on('end', () => {
    const answer = answers[(req.url ?? '').slice(1)];
    const out = JSON.stringify(answer ? answer(text ? JSON.parse(text) as Body : {}) : { Err: `floor driver: ${req.url} not implemented` });
    res.writeHead(answer ? 200 : 404, { 'Content-Type': 'application/vnd.docker.plugins.v1.2+json', 'Content-Length': Buffer.byteLength(out) });
    res.end(out);
  });
}).listen(socket, () => process.stdout.write('floor driver: ready\n'));
