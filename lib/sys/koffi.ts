import koffi from 'koffi';
import { SysError } from './errno.js';
import type { Sys } from './types.js';

// Under Node (the ava tests) system calls go through koffi, which ships prebuilt binaries,
// so the tests exercise the same kernel paths the Bun binary does.
const lib = koffi.load('libc.so.6');
const libc = {
  socket: lib.func('int socket(int, int, int)'),
  bind: lib.func('int bind(int, void *, uint32_t)'),
  setsockopt: lib.func('int setsockopt(int, int, int, void *, uint32_t)'),
  send: lib.func('int64_t send(int, void *, size_t, int)'),
  recv: lib.func('int64_t recv(int, void *, size_t, int)'),
  close: lib.func('int close(int)'),
  setns: lib.func('int setns(int, int)'),
  unshare: lib.func('int unshare(int)'),
  mount: lib.func('int mount(const char *, const char *, const char *, unsigned long, void *)'),
  umount2: lib.func('int umount2(const char *, int)'),
  getrusage: lib.func('int getrusage(int, void *)'),
};

function fail(syscall: string, detail?: string): never {
  throw new SysError(syscall, koffi.errno(), detail);
}

export const sys: Sys = {
  backend: 'koffi',
  socket(domain, type, protocol) {
    const fd = libc.socket(domain, type, protocol) as number;
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
    if (libc.mount(source, target, fstype, flags, null) < 0) fail('mount', target);
  },
  umount2(target, flags) { if (libc.umount2(target, flags) < 0) fail('umount2', target); },
  childrenMaxRssKiB() {
    const ru = new BigInt64Array(18);
    if (libc.getrusage(-1, ru) < 0) fail('getrusage');
    return Number(ru[4]);
  },
};
