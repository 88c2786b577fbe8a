import { closeSync, existsSync, mkdirSync, openSync, readdirSync, statSync, unlinkSync, writeSync } from 'node:fs';
import { sys, SysError } from '../sys/index.js';
import { CLONE_NEWNET, MNT_DETACH, MS_BIND, MS_REC, MS_SHARED } from '../sys/types.js';

export const NETNS_RUN_DIR = '/run/netns';

/** The namespace file does not exist (any more): DEL treats this as "already gone". */
export class NetnsNotFoundError extends Error {
  readonly path: string;
  constructor(path: string) {
    super(`network namespace ${path} does not exist`);
    this.name = 'NetnsNotFoundError';
    this.path = path;
  }
}

let homeFd: number | undefined;

/**
 * The namespace this thread started in. Read from thread-self, not self: setns(2) moves one thread,
 * and under a runtime with helper threads the process-wide link can point elsewhere.
 */
function home(): number {
  homeFd ??= openSync('/proc/thread-self/ns/net', 'r');
  return homeFd;
}

/** A name under /run/netns, or a path as CNI_NETNS gives it (/run/netns/x, /proc/PID/ns/net). */
export function netnsPath(nameOrPath: string): string {
  return nameOrPath.includes('/') ? nameOrPath : `${NETNS_RUN_DIR}/${nameOrPath}`;
}

export function openNetns(path: string): number {
  try {
    return openSync(path, 'r');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') throw new NetnsNotFoundError(path);
    throw e;
  }
}

function enter(fd: number, path: string): void {
  try {
    sys.setns(fd, CLONE_NEWNET);
  } catch (e) {
    if (e instanceof SysError && e.code === 'EINVAL') throw new Error(`${path} is not a network namespace`);
    throw e;
  }
}

function leave(): void {
  try {
    sys.setns(home(), CLONE_NEWNET);
  } catch (e) {
    // Carrying on in the wrong namespace could configure the host as if it were a container.
    writeSync(2, `tether: cannot return to the original network namespace: ${String(e)}\n`);
    process.abort();
  }
}

/**
 * Runs fn with the calling thread inside the namespace, then returns home. fn must be synchronous:
 * anything it defers runs after the thread is back. Sockets opened inside keep the namespace.
 */
export function inNetnsFd<T>(fd: number, fn: () => T, path = `fd ${fd}`): T {
  home();
  enter(fd, path);
  let result: T;
  try {
    result = fn();
  } finally {
    leave();
  }
  if (result && typeof (result as { then?: unknown }).then === 'function') {
    throw new Error('inNetns: the callback must be synchronous (it returned a promise)');
  }
  return result;
}

export function inNetns<T>(path: string, fn: () => T): T {
  const fd = openNetns(path);
  try {
    return inNetnsFd(fd, fn, path);
  } finally {
    closeSync(fd);
  }
}

/** /run/netns must be a shared mount so namespaces bound under it are seen by other mount namespaces (as iproute2 does). */
function prepareRunDir(): void {
  mkdirSync(NETNS_RUN_DIR, { recursive: true, mode: 0o755 });
  try {
    sys.mount('none', NETNS_RUN_DIR, null, MS_SHARED | MS_REC);
  } catch (e) {
    if (!(e instanceof SysError) || e.code !== 'EINVAL') throw e;
    // Not a mount point yet: bind it onto itself, then mark it shared.
    sys.mount(NETNS_RUN_DIR, NETNS_RUN_DIR, 'none', MS_BIND | MS_REC);
    sys.mount('none', NETNS_RUN_DIR, null, MS_SHARED | MS_REC);
  }
}

const VALID_NAME = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$/;

/** Creates /run/netns/NAME holding a new, empty network namespace (like `ip netns add`, with no exec). */
export function createNamedNetns(name: string): string {
  if (!VALID_NAME.test(name)) throw new Error(`invalid namespace name ${JSON.stringify(name)}`);
  prepareRunDir();
  const path = `${NETNS_RUN_DIR}/${name}`;
  closeSync(openSync(path, 'wx', 0)); // fails with EEXIST instead of reusing someone else's namespace
  home();
  let entered = false;
  try {
    sys.unshare(CLONE_NEWNET);
    entered = true;
    sys.mount('/proc/thread-self/ns/net', path, 'none', MS_BIND);
  } catch (e) {
    if (entered) leave();
    try { unlinkSync(path); } catch { /* already gone */ }
    throw e;
  }
  leave();
  return path;
}

/** Unmounts and removes /run/netns/NAME. Returns false when it did not exist. */
export function deleteNamedNetns(name: string): boolean {
  const path = netnsPath(name);
  if (!existsSync(path)) return false;
  try {
    sys.umount2(path, MNT_DETACH);
  } catch (e) {
    if (!(e instanceof SysError) || (e.code !== 'EINVAL' && e.code !== 'ENOENT')) throw e;
  }
  try { unlinkSync(path); } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
  }
  return true;
}

export function listNamedNetns(): string[] {
  try {
    return readdirSync(NETNS_RUN_DIR).sort();
  } catch {
    return [];
  }
}

/** Namespaces are identified by their nsfs inode; two paths name the same one when dev and inode match. */
export function netnsInode(path: string): string {
  try {
    const st = statSync(path);
    return `${st.dev}:${st.ino}`;
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') throw new NetnsNotFoundError(path);
    throw e;
  }
}

export function isCurrentNetns(path: string): boolean {
  return netnsInode(path) === netnsInode('/proc/thread-self/ns/net');
}
