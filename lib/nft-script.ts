import { childProcess } from './builtin.js';
import { CniError, ErrorCode } from './cni/errors.js';
import { systemTool } from './systool.js';

/**
 * Runs an nft script as one atomic transaction. Only for one-time setup of a table (per node or per
 * network), never per container: containers add set elements over netlink. `what` names the feature
 * in errors ("ipMasq", "portMappings").
 */
export function runNftScript(script: string, what: string, table: string): void {
  const nft = systemTool('nft');
  if (!nft) {
    throw new CniError(ErrorCode.Internal, `${what}: the nft command is not installed (looked in the system directories)`, `${what} needs nftables (Debian package nftables) for its one-time setup`);
  }
  // No timeout: nft finishes a few rules' transaction however loaded the machine is, and the runtime's
  // deadline covers a wedged kernel.
  const run = childProcess().spawnSync(nft, ['-f', '-'], { input: script, encoding: 'utf8' });
  if (run.error || run.status !== 0) {
    const why = run.error ? run.error.message : run.stderr.trim();
    throw new CniError(ErrorCode.Internal, `${what}: programming nftables table ${table} failed: ${why}`, `${what} needs the nft command (Debian package nftables) for its one-time setup`);
  }
}
