import { chmodSync, mkdtempSync, readFileSync, writeFileSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/**
 * A recording test double for chain tests: every call appends {command, env, conf} to the log named
 * in its config ("debugLog"), and it behaves as the config says:
 *   result  - printed on ADD (default: prevResult passed through with an interface appended)
 *   failOn  - {COMMAND: {code, msg, details}} answered with a CNI error
 *   sleepMs - stall before answering (for timeouts)
 */
const SOURCE = `#!/usr/bin/env node
const fs = require('fs');
const stdin = fs.readFileSync(0, 'utf8');
const conf = JSON.parse(stdin);
const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => k.startsWith('CNI_')));
const cmd = process.env.CNI_COMMAND;
if (cmd === 'VERSION') { process.stdout.write(JSON.stringify({ cniVersion: '1.1.0', supportedVersions: ['0.3.1', '0.4.0', '1.0.0', '1.1.0'] })); process.exit(0); }
fs.appendFileSync(conf.debugLog, JSON.stringify({ command: cmd, type: conf.type, env, conf }) + '\\n');
const finish = () => {
  const f = conf.failOn && conf.failOn[cmd];
  if (f) { process.stdout.write(JSON.stringify({ cniVersion: conf.cniVersion, ...f })); process.exit(1); }
  if (cmd === 'ADD') {
    const prev = conf.prevResult || { cniVersion: conf.cniVersion };
    const out = conf.result || { ...prev, cniVersion: conf.cniVersion, interfaces: [...(prev.interfaces || []), { name: conf.type + '-if', sandbox: process.env.CNI_NETNS }] };
    process.stdout.write(JSON.stringify(out));
  }
  process.exit(0);
};
if (conf.sleepMs) setTimeout(finish, conf.sleepMs); else finish();
`;

export interface FakeCall { command: string; type: string; env: Record<string, string>; conf: Record<string, any> }

export function fakePlugins(names: string[]): { dir: string; log: string; calls(): FakeCall[] } {
  const dir = mkdtempSync(join(tmpdir(), 'tether-fake-'));
  for (const n of names) {
    writeFileSync(join(dir, n), SOURCE);
    chmodSync(join(dir, n), 0o755);
  }
  const log = join(dir, 'calls.log');
  return {
    dir, log,
    calls: () => (existsSync(log) ? readFileSync(log, 'utf8').trim().split('\n').filter(Boolean).map((l) => JSON.parse(l) as FakeCall) : []),
  };
}
