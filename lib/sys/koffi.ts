import koffi from 'koffi';
import { checked } from './checked.js';

// Under Node (the ava tests) system calls go through koffi, which ships prebuilt binaries,
// so the tests exercise the same kernel paths the Bun binary does.
const lib = koffi.load('libc.so.6');
const mount = lib.func('int mount(const char *, const char *, const char *, unsigned long, void *)');
const fcntl = lib.func('int fcntl(int, int, ...)');

export const sys = checked('koffi', {
  socket: lib.func('int socket(int, int, int)'),
  bind: lib.func('int bind(int, void *, uint32_t)'),
  connect: lib.func('int connect(int, void *, uint32_t)'),
  setsockopt: lib.func('int setsockopt(int, int, int, void *, uint32_t)'),
  send: lib.func('int64_t send(int, void *, size_t, int)'),
  recv: lib.func('int64_t recv(int, void *, size_t, int)'),
  close: lib.func('int close(int)'),
  setns: lib.func('int setns(int, int)'),
  unshare: lib.func('int unshare(int)'),
  mount: (source, target, fstype, flags) => mount(source, target, fstype, flags, null),
  umount2: lib.func('int umount2(const char *, int)'),
  flock: lib.func('int flock(int, int)'),
  getrusage: lib.func('int getrusage(int, void *)'),
  fcntl: (fd, cmd, arg) => fcntl(fd, cmd, 'void *', arg),
  inotify_init1: lib.func('int inotify_init1(int)'),
  inotify_add_watch: lib.func('int inotify_add_watch(int, const char *, uint32_t)'),
  poll: lib.func('int poll(void *, unsigned long, int)'),
  errno: () => koffi.errno(),
});
