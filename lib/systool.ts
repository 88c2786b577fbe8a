import { accessSync, constants } from 'node:fs';

// A CNI plugin runs as root with whatever PATH the runtime (or a developer's shell) hands it: a PATH
// lookup could run an unrelated program of the same name (node_modules/.bin has an `nft`). System
// tools are therefore looked up only in the system directories.
const SYSTEM_DIRS = ['/usr/sbin', '/sbin', '/usr/bin', '/bin', '/usr/local/sbin', '/usr/local/bin'];

export function systemTool(name: string): string | null {
  for (const dir of SYSTEM_DIRS) {
    const file = `${dir}/${name}`;
    try {
      accessSync(file, constants.X_OK);
      return file;
    } catch { /* not here */ }
  }
  return null;
}
