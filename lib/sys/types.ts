/**
 * The system calls tether makes directly. Everything else goes through node: APIs, so this
 * interface is the only place where the Bun and Node runtimes differ.
 * Every call is synchronous on the calling thread: setns(2) is per thread, so work that must
 * happen inside a network namespace has to stay on the thread that entered it.
 */
export interface Sys {
  readonly backend: 'bun' | 'koffi';
  socket(domain: number, type: number, protocol: number): number;
  bind(fd: number, addr: Uint8Array): void;
  /** connect(2); for a raw socket, the peer its send() goes to (tests' raw SCTP probe). */
  connect(fd: number, addr: Uint8Array): void;
  setsockopt(fd: number, level: number, name: number, value: Uint8Array): void;
  send(fd: number, buf: Uint8Array, len: number): number;
  /** Returns the byte count; with MSG_TRUNC the real length even when larger than buf. */
  recv(fd: number, buf: Uint8Array, flags: number): number;
  close(fd: number): void;
  setns(fd: number, nstype: number): void;
  unshare(flags: number): void;
  mount(source: string, target: string, fstype: string | null, flags: number): void;
  umount2(target: string, flags: number): void;
  /** flock(2); with LOCK_NB returns false instead of waiting when another holder has it. */
  flock(fd: number, op: number): boolean;
  /**
   * getrusage(RUSAGE_CHILDREN): CPU time of all waited-for children together, and the largest
   * resident set any one of them reached (KiB).
   */
  childrenUsage(): { userMs: number; sysMs: number; maxRssKiB: number };
  /**
   * An open-file-description byte-range lock (fcntl F_OFD_SETLK/F_OFD_SETLKW): held by this open file,
   * released when it is closed or its process dies. type F_WRLCK or F_UNLCK. With wait false, returns
   * false instead of waiting when another holder conflicts.
   */
  rangeLock(fd: number, type: number, start: number, len: number, wait: boolean): boolean;
  /** F_OFD_GETLK: the first lock that would conflict with a write lock on the range, or undefined. */
  rangeConflict(fd: number, start: number, len: number): { start: number; len: number } | undefined;
  /** inotify_init1(IN_NONBLOCK | IN_CLOEXEC). */
  inotifyInit(): number;
  inotifyAddWatch(fd: number, path: string, mask: number): void;
  /** poll(2) for input on one descriptor: true when readable, false on timeout (or EINTR). */
  waitReadable(fd: number, timeoutMs: number): boolean;
}

export const AF_NETLINK = 16;
export const SOCK_RAW = 3;
export const SOCK_CLOEXEC = 0o2000000;
export const SOL_SOCKET = 1;
export const SO_RCVBUF = 8;
export const SO_SNDBUF = 7;
export const SO_RCVTIMEO = 20;
export const SOL_NETLINK = 270;
export const CLONE_NEWNET = 0x40000000;
export const MS_BIND = 4096;
export const MS_REC = 16384;
export const MS_SHARED = 1 << 20;
export const MNT_DETACH = 2;
export const MSG_PEEK = 2;
export const MSG_TRUNC = 0x20;
export const LOCK_SH = 1;
export const LOCK_EX = 2;
export const LOCK_NB = 4;
export const LOCK_UN = 8;
export const F_WRLCK = 1;
export const F_UNLCK = 2;
export const IN_CLOSE_WRITE = 0x8;
export const IN_MODIFY = 0x2;
