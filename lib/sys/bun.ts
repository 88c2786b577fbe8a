import { dlopen, FFIType, read, type Pointer } from 'bun:ffi';
import { SysError } from './errno.js';
import type { Sys } from './types.js';

const { i32, u64, ptr } = FFIType;
const libc = dlopen('libc.so.6', {
  socket: { args: [i32, i32, i32], returns: i32 },
  bind: { args: [i32, ptr, i32], returns: i32 },
  setsockopt: { args: [i32, i32, i32, ptr, i32], returns: i32 },
  send: { args: [i32, ptr, u64, i32], returns: FFIType.i64 },
  recv: { args: [i32, ptr, u64, i32], returns: FFIType.i64 },
  close: { args: [i32], returns: i32 },
  setns: { args: [i32, i32], returns: i32 },
  unshare: { args: [i32], returns: i32 },
  mount: { args: [ptr, ptr, ptr, u64, ptr], returns: i32 },
  umount2: { args: [ptr, i32], returns: i32 },
  getrusage: { args: [i32, ptr], returns: i32 },
  __errno_location: { args: [], returns: ptr },
}).symbols;

// errno is thread-local; it is read straight after the failing call on the same thread.
function fail(syscall: string, detail?: string): never {
  throw new SysError(syscall, read.i32(libc.__errno_location() as Pointer, 0), detail);
}

const cstr = (s: string) => Buffer.from(`${s}\0`);

export const sys: Sys = {
  backend: 'bun',
  socket(domain, type, protocol) {
    const fd = libc.socket(domain, type, protocol);
    return fd < 0 ? fail('socket') : fd;
  },
  bind(fd, addr) { if (libc.bind(fd, addr, addr.byteLength) < 0) fail('bind'); },
  setsockopt(fd, level, name, value) {
    if (libc.setsockopt(fd, level, name, value, value.byteLength) < 0) fail('setsockopt', `(${level}/${name})`);
  },
  send(fd, buf, len) {
    const n = Number(libc.send(fd, buf, len, 0));
    return n < 0 ? fail('send') : n;
  },
  recv(fd, buf, flags) {
    const n = Number(libc.recv(fd, buf, buf.byteLength, flags));
    return n < 0 ? fail('recv') : n;
  },
  close(fd) { libc.close(fd); },
  setns(fd, nstype) { if (libc.setns(fd, nstype) < 0) fail('setns'); },
  unshare(flags) { if (libc.unshare(flags) < 0) fail('unshare'); },
  mount(source, target, fstype, flags) {
    if (libc.mount(cstr(source), cstr(target), fstype === null ? null : cstr(fstype), flags, null) < 0) {
      fail('mount', target);
    }
  },
  umount2(target, flags) { if (libc.umount2(cstr(target), flags) < 0) fail('umount2', target); },
  childrenMaxRssKiB() {
    const ru = new BigInt64Array(18);
    if (libc.getrusage(-1, ru) < 0) fail('getrusage');
    return Number(ru[4]); // ru_maxrss follows the two struct timevals
  },
};
