import test from 'ava';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { runIn } from '../../conformance/spawn.js';
import { listNamedNetns } from '../../lib/netns/netns.js';

// containerd's CRI plugin (the rig in shared/reference/cri, containerd in its own namespaces) runs a pod
// with a hostPort and bandwidth annotations on a conflist of tether-bridge only; test/cri/ports.sh drives
// it and prints one line per step.
const root = fileURLToPath(new URL('../../../', import.meta.url));
const assets = `${root}../shared/reference/cri`;

test('containerd CRI: hostPort answers from another namespace, bandwidth annotations shape, rmp unpublishes (tether plugins only)', async (t) => {
  t.true(existsSync(`${assets}/cri_rig.sh`), `the CRI rig is expected at ${assets}`);
  const r = await runIn(undefined, '/bin/bash', [`${root}test/cri/ports.sh`, assets, `${root}dist/bin`], 300_000);
  t.log(r.stdout.trim());
  const lines = r.stdout.split('\n');
  for (const step of [/^ok containerd started/, /^ok pod \w+ with hostPort 8080/, /^ok hostPort 8080 answers from another namespace: web/,
    /^ok bandwidth: tbf 10Mbit \(ingress\) and 20Mbit \(egress\)/, /^ok stopp \+ rmp removed the mapping/, /^done$/]) {
    t.true(lines.some((l) => step.test(l)), `${step}: ${lines.find((l) => l.startsWith('fail')) ?? r.stderr.slice(-500)}`);
  }
  t.is(r.status, 0);
  const ns = /netns (tcri-[0-9a-f]+)/.exec(r.stdout)?.[1];
  t.truthy(ns);
  t.false(listNamedNetns().includes(ns!), 'the rig deleted its namespace');
});
