import { SysError } from './errno.js';
import type { Sys } from './types.js';

/** The raw libc calls a backend binds: C return conventions (-1 and errno), strings as JS strings. */
export interface Libc {
  socket(domain: number, type: number, protocol: number): number;
  bind(fd: number, addr: Uint8Array, len: number): number;
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
    childrenUsage() {
      const ru = new BigInt64Array(18);
      ok(c.getrusage(-1 /* RUSAGE_CHILDREN */, ru), 'getrusage');
      // struct rusage opens with two struct timevals (seconds, microseconds), then ru_maxrss.
      const ms = (sec: bigint, usec: bigint) => Number(sec) * 1000 + Number(usec) / 1000;
      return { userMs: ms(ru[0], ru[1]), sysMs: ms(ru[2], ru[3]), maxRssKiB: Number(ru[4]) };
    },
  };
}
