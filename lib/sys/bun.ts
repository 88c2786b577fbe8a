import { dlopen, FFIType, read, type Pointer } from 'bun:ffi';
import { checked } from './checked.js';

const { i32, u64, ptr } = FFIType;
const libc = dlopen('libc.so.6', {
  socket: { args: [i32, i32, i32], returns: i32 },
  bind: { args: [i32, ptr, i32], returns: i32 },
  connect: { args: [i32, ptr, i32], returns: i32 },
  setsockopt: { args: [i32, i32, i32, ptr, i32], returns: i32 },
  send: { args: [i32, ptr, u64, i32], returns: FFIType.i64 },
  recv: { args: [i32, ptr, u64, i32], returns: FFIType.i64 },
  close: { args: [i32], returns: i32 },
  setns: { args: [i32, i32], returns: i32 },
  unshare: { args: [i32], returns: i32 },
  mount: { args: [ptr, ptr, ptr, u64, ptr], returns: i32 },
  umount2: { args: [ptr, i32], returns: i32 },
  flock: { args: [i32, i32], returns: i32 },
  getrusage: { args: [i32, ptr], returns: i32 },
  // Variadic in C; its third argument is a pointer, passed in the same register either way.
  fcntl: { args: [i32, i32, ptr], returns: i32 },
  inotify_init1: { args: [i32], returns: i32 },
  inotify_add_watch: { args: [i32, ptr, FFIType.u32], returns: i32 },
  poll: { args: [ptr, u64, i32], returns: i32 },
  __errno_location: { args: [], returns: ptr },
}).symbols;

// bun:ffi passes strings as pointers to NUL-terminated buffers.
const cstr = (s: string) => Buffer.from(`${s}\0`);

export const sys = checked('bun', {
  socket: libc.socket,
  bind: libc.bind,
  connect: libc.connect,
  setsockopt: libc.setsockopt,
  send: libc.send,
  recv: libc.recv,
  close: libc.close,
  setns: libc.setns,
  unshare: libc.unshare,
  mount: (source, target, fstype, flags) => libc.mount(cstr(source), cstr(target), fstype === null ? null : cstr(fstype), flags, null),
  umount2: (target, flags) => libc.umount2(cstr(target), flags),
  flock: libc.flock,
  getrusage: libc.getrusage,
  fcntl: libc.fcntl,
  inotify_init1: libc.inotify_init1,
  inotify_add_watch: (fd, path, mask) => libc.inotify_add_watch(fd, cstr(path), mask),
  poll: libc.poll,
  errno: () => read.i32(libc.__errno_location() as Pointer, 0),
});
