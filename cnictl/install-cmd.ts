import { str } from '../lib/argv.js';
import type { Ctx } from './context.js';
import { actionJSON, apply, describe, planInstall, planUninstall } from './install.js';

/** `cnictl install|uninstall`: print the plan, then carry it out unless --dry-run. */
export function runInstall(c: Ctx, cmd: 'install' | 'uninstall'): number {
  const binDir = str(c.p, 'bin-dir') ?? '/opt/cni/bin';
  const dryRun = c.p.flags.has('dry-run');
  // The compiled binary installs itself; under node (development) say which binary to install.
  const from = str(c.p, 'from') ?? ('Bun' in globalThis ? process.execPath : '');
  const actions = cmd === 'install'
    ? planInstall({ binDir, confDir: c.confDir, from: from || 'dist/bin/tether', subnet: str(c.p, 'subnet') ?? '10.22.0.0/16', force: c.p.flags.has('force'),
      ...(c.p.flags.has('docker') ? { dockerUnitDir: str(c.p, 'systemd-dir') ?? '/etc/systemd/system' } : {}) })
    : planUninstall({ binDir, confDir: c.confDir });
  if (!dryRun) apply(actions);
  if (c.json) {
    c.out(JSON.stringify({ [cmd]: { dryRun, binDir, confDir: c.confDir, actions: actions.map(actionJSON) } }, null, 2));
    return 0;
  }
  const lines = actions.map(describe);
  if (dryRun) {
    const shown = actions.flatMap((a) => (a.kind === 'write' && a.path.endsWith('.conflist') ? [`\n${a.path} would hold:\n${a.content}`] : []));
    c.out(`${cmd} (dry run, nothing changed):\n  ${lines.join('\n  ')}${shown.join('')}`);
  } else {
    c.out(`${cmd}:\n  ${lines.join('\n  ')}`);
  }
  return 0;
}
