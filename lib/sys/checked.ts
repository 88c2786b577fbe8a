import { SysError } from './errno.js';
import { F_UNLCK, F_WRLCK, type Sys } from './types.js';

const F_OFD_GETLK = 36;
const F_OFD_SETLK = 37;
const F_OFD_SETLKW = 38;

/** struct flock (x86-64 and arm64 alike): l_type, l_whence (SEEK_SET), l_start, l_len, l_pid (0 for OFD locks). */
function flockStruct(type: number, start: number, len: number): Uint8Array {
  const b = new Uint8Array(32);
  const v = new DataView(b.buffer);
  v.setInt16(0, type, true);
  v.setBigInt64(8, BigInt(start), true);
  v.setBigInt64(16, BigInt(len), true);
  return b;
}

/** The raw libc calls a backend binds: C return conventions (-1 and errno), strings as JS strings. */
export interface Libc {
  socket(domain: number, type: number, protocol: number): number;
  bind(fd: number, addr: Uint8Array, len: number): number;
  connect(fd: number, addr: Uint8Array, len: number): number;
  setsockopt(fd: number, level: number, name: number, value: Uint8Array, len: number): number;
  send(fd: number, buf: Uint8Array, len: number, flags: number): number | bigint;
  recv(fd: number, buf: Uint8Array, len: number, flags: number): number | bigint;
  close(fd: number): number;
  setns(fd: number, nstype: number): number;
  unshare(flags: number): number;
  mount(source: string, target: string, fstype: string | null, flags: number): number;
  umount2(target: string, flags: number): number;
  flock(fd: number, op: number): number;
  getrusage(who: number, usage: BigInt64Array): number;
  /** fcntl(fd, cmd, struct flock *). */
  fcntl(fd: number, cmd: number, arg: Uint8Array): number;
  inotify_init1(flags: number): number;
  inotify_add_watch(fd: number, path: string, mask: number): number;
  poll(fds: Uint8Array, nfds: number, timeoutMs: number): number;
  /** errno of the calling thread, read straight after the failing call. */
  errno(): number;
}

/** Turns raw calls into the Sys interface: failures become SysError with the errno name. */
export function checked(backend: Sys['backend'], c: Libc): Sys {
  const fail = (syscall: string, detail?: string): never => { throw new SysError(syscall, c.errno(), detail); };
  const ok = (r: number, syscall: string, detail?: string) => { if (r < 0) fail(syscall, detail); };
  return {
    backend,
    socket(domain, type, protocol) {
      const fd = c.socket(domain, type, protocol);
      return fd < 0 ? fail('socket') : fd;
    },
    bind(fd, addr) { ok(c.bind(fd, addr, addr.byteLength), 'bind'); },
    connect(fd, addr) { ok(c.connect(fd, addr, addr.byteLength), 'connect'); },
    setsockopt(fd, level, name, value) { ok(c.setsockopt(fd, level, name, value, value.byteLength), 'setsockopt', `(${level}/${name})`); },
    send(fd, buf, len) {
      const n = Number(c.send(fd, buf, len, 0));
      return n < 0 ? fail('send') : n;
    },
    recv(fd, buf, flags) {
      const n = Number(c.recv(fd, buf, buf.byteLength, flags));
      return n < 0 ? fail('recv') : n;
    },
    close(fd) { c.close(fd); },
    setns(fd, nstype) { ok(c.setns(fd, nstype), 'setns'); },
    unshare(flags) { ok(c.unshare(flags), 'unshare'); },
    mount(source, target, fstype, flags) { ok(c.mount(source, target, fstype, flags), 'mount', target); },
    umount2(target, flags) { ok(c.umount2(target, flags), 'umount2', target); },
    flock(fd, op) {
      if (c.flock(fd, op) === 0) return true;
      const errno = c.errno();
      if (errno === 11 /* EWOULDBLOCK */ || errno === 4 /* EINTR */) return false;
      throw new SysError('flock', errno);
    },
    rangeLock(fd, type, start, len, wait) {
      if (c.fcntl(fd, wait ? F_OFD_SETLKW : F_OFD_SETLK, flockStruct(type, start, len)) === 0) return true;
      const errno = c.errno();
      if (errno === 11 /* EAGAIN */ || errno === 13 /* EACCES */ || errno === 4 /* EINTR */) return false;
      throw new SysError('fcntl', errno, '(byte-range lock)');
    },
    rangeConflict(fd, start, len) {
      const fl = flockStruct(F_WRLCK, start, len);
      ok(c.fcntl(fd, F_OFD_GETLK, fl), 'fcntl', '(F_OFD_GETLK)');
      const v = new DataView(fl.buffer, fl.byteOffset, fl.byteLength);
      if (v.getInt16(0, true) === F_UNLCK) return undefined;
      return { start: Number(v.getBigInt64(8, true)), len: Number(v.getBigInt64(16, true)) };
    },
    inotifyInit() {
      const fd = c.inotify_init1(0o4000 /* IN_NONBLOCK */ | 0o2000000 /* IN_CLOEXEC */);
      return fd < 0 ? fail('inotify_init1') : fd;
    },
    inotifyAddWatch(fd, path, mask) { ok(c.inotify_add_watch(fd, path, mask), 'inotify_add_watch', path); },
    waitReadable(fd, timeoutMs) {
      const pfd = new Uint8Array(8);
      const v = new DataView(pfd.buffer);
      v.setInt32(0, fd, true);
      v.setInt16(4, 1 /* POLLIN */, true);
      const n = c.poll(pfd, 1, Math.max(0, Math.floor(timeoutMs)));
      if (n < 0 && c.errno() !== 4 /* EINTR */) fail('poll');
      return n > 0;
    },
    childrenUsage() {
      const ru = new BigInt64Array(18);
      ok(c.getrusage(-1 /* RUSAGE_CHILDREN */, ru), 'getrusage');
      // struct rusage opens with two struct timevals (seconds, microseconds), then ru_maxrss.
      const ms = (sec: bigint, usec: bigint) => Number(sec) * 1000 + Number(usec) / 1000;
      return { userMs: ms(ru[0], ru[1]), sysMs: ms(ru[2], ru[3]), maxRssKiB: Number(ru[4]) };
    },
  };
}
