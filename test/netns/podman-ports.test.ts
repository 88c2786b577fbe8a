import test from 'ava';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { runIn } from '../../conformance/spawn.js';
import { inNetns } from '../../lib/netns/netns.js';
import { listPortMappings } from '../../lib/portmap/index.js';
import { PodmanRig } from '../helpers/podman.js';
import { waitFor } from '../helpers/wait.js';

// podman -p 8080:80 on a tether-bridge network (portMappings capability in tether-bridge's own exec):
// the published port answers from another host and from the host itself. See test/helpers/podman.ts.

const rig = new PodmanRig();
const third = 100 + Math.floor(Math.random() * 100);
const net = rig.addNetwork({
  cniVersion: '1.0.0',
  name: `${rig.prefix}pnet`,
  plugins: [{
    type: 'tether-bridge', bridge: `${rig.prefix}pb`, isDefaultGateway: true, ipMasq: true,
    capabilities: { portMappings: true },
    ipam: { type: 'tether-ipam', dataDir: rig.dataDir, ranges: [[{ subnet: `10.${third}.8.0/24` }]] },
  }],
});

test.after.always('podman containers, namespaces and storage are removed', (t) => {
  t.deepEqual(rig.cleanup(), []);
  t.deepEqual(rig.leftovers(), []);
});

// curl, not busybox wget: the static busybox's wget crashes on this machine.
const httpGet = (ns: string, url: string) => runIn(ns, '/usr/bin/curl', ['-s', '-m', '5', url], 20_000);

test('podman run -p 8080:80 on a tether network answers from another host and from the host; podman rm unpublishes it', async (t) => {
  mkdirSync(join(rig.rootfs, 'www'), { recursive: true });
  writeFileSync(join(rig.rootfs, 'www', 'index.html'), 'published by tether\n');
  await rig.run('web', net, ['/bin/busybox', 'httpd', '-f', '-p', '80', '-h', '/www'], ['-p', '8080:80']);
  const out = rig.outside!;
  // The server needs a moment after podman returns: poll until it answers (bounded), then assert.
  await waitFor('httpd behind 8080', async () => (await httpGet(out.path, `http://${out.hostIP}:8080/`)).status === 0, { ms: 30_000, every: 250 });
  for (const [what, ns, ip] of [['another host', out.path, out.hostIP], ['the host on its address', rig.host, out.hostIP], ['the host on 127.0.0.1', rig.host, '127.0.0.1']] as const) {
    const r = await httpGet(ns, `http://${ip}:8080/`);
    t.is(r.stdout, 'published by tether\n', `${what}: ${r.stderr}`);
  }
  const mine = () => inNetns(rig.host, () => listPortMappings()).filter((m) => m.owner.network === net);
  t.deepEqual(mine().map((m) => [m.protocol, m.hostPort, m.containerPort]), [['tcp', 8080, 80]]);
  await rig.ok(['rm', '-f', 'web']);
  t.deepEqual(mine(), [], 'podman rm (CNI DEL) removed the mapping');
});
