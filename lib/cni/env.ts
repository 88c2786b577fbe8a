import { isAbsolute } from 'node:path';
import { parseCniArgs } from './args.js';
import { CniError, ErrorCode } from './errors.js';
import { containerIDProblem, ifnameProblem } from './validate.js';

export type Command = 'ADD' | 'DEL' | 'CHECK' | 'VERSION' | 'STATUS' | 'GC';
export const COMMANDS: readonly Command[] = ['ADD', 'DEL', 'CHECK', 'VERSION', 'STATUS', 'GC'];

/** The protocol parameters of one invocation (the CNI_* environment). */
export interface CmdArgs {
  command: Command;
  containerID: string;
  /** Empty on a DEL whose namespace is already gone. */
  netns: string;
  ifname: string;
  args: [string, string][];
  path: string[];
}

type Var = 'CNI_CONTAINERID' | 'CNI_NETNS' | 'CNI_IFNAME' | 'CNI_PATH';

// The spec's table, not the Go skeleton's stricter one: CNI_PATH is needed only by GC (and by whoever
// delegates to an exec'd plugin, which asks for it when it does), CNI_NETNS is optional on DEL.
const REQUIRED: Record<Command, Var[]> = {
  ADD: ['CNI_CONTAINERID', 'CNI_NETNS', 'CNI_IFNAME'],
  CHECK: ['CNI_CONTAINERID', 'CNI_NETNS', 'CNI_IFNAME'],
  DEL: ['CNI_CONTAINERID', 'CNI_IFNAME'],
  GC: ['CNI_PATH'],
  STATUS: [],
  VERSION: [],
};

function invalidEnv(msg: string, variable: string): CniError {
  return new CniError(ErrorCode.InvalidEnvironment, msg, variable);
}

export function readCommand(env: NodeJS.ProcessEnv): Command | undefined {
  const c = env.CNI_COMMAND;
  if (c === undefined || c === '') return undefined;
  if (!(COMMANDS as readonly string[]).includes(c)) {
    throw invalidEnv(`unknown CNI_COMMAND: ${c} (expected one of ${COMMANDS.join(', ')})`, 'CNI_COMMAND');
  }
  return c as Command;
}

/** Reads and checks the CNI_* variables for a command; every problem is code 4 naming the variable. */
export function readCmdArgs(command: Command, env: NodeJS.ProcessEnv): CmdArgs {
  const missing = REQUIRED[command].filter((v) => !env[v]);
  if (missing.length) {
    throw invalidEnv(`required environment variables missing for ${command}: ${missing.join(', ')}`, missing.join(','));
  }
  const args: CmdArgs = {
    command,
    containerID: env.CNI_CONTAINERID ?? '',
    netns: env.CNI_NETNS ?? '',
    ifname: env.CNI_IFNAME ?? '',
    args: parseCniArgs(env.CNI_ARGS),
    path: (env.CNI_PATH ?? '').split(':').filter(Boolean),
  };
  if (command === 'ADD' || command === 'DEL' || command === 'CHECK') {
    const idProblem = containerIDProblem(args.containerID);
    if (idProblem) throw invalidEnv(`CNI_CONTAINERID ${JSON.stringify(args.containerID)} ${idProblem}`, 'CNI_CONTAINERID');
    const ifProblem = ifnameProblem(args.ifname);
    if (ifProblem) throw invalidEnv(`CNI_IFNAME ${JSON.stringify(args.ifname)} ${ifProblem}`, 'CNI_IFNAME');
    if (args.netns && !isAbsolute(args.netns)) {
      throw invalidEnv(`CNI_NETNS must be an absolute path, got ${JSON.stringify(args.netns)}`, 'CNI_NETNS');
    }
  }
  return args;
}

/** The value of one CNI_ARGS key (the last one wins, as with repeated environment variables). */
export function cniArg(args: CmdArgs, key: string): string | undefined {
  let v: string | undefined;
  for (const [k, val] of args.args) if (k === key) v = val;
  return v;
}
