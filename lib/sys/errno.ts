import { constants } from 'node:os';

let names: Map<number, string> | undefined;

// Where two names share a number, the one the kernel's own sources use.
const PREFERRED: Record<number, string> = { 11: 'EAGAIN', 95: 'EOPNOTSUPP', 35: 'EDEADLK' };

/** errno number to its symbolic name (EEXIST, ENODEV, ...), built lazily from the runtime's own table. */
export function errnoName(errno: number): string {
  if (!names) {
    names = new Map();
    for (const [name, value] of Object.entries(constants.errno)) {
      // Several names share a number (EWOULDBLOCK = EAGAIN); keep the first, the common one.
      if (!names.has(value)) names.set(value, name);
    }
    for (const [n, name] of Object.entries(PREFERRED)) names.set(Number(n), name);
  }
  return names.get(errno) ?? `errno ${errno}`;
}

const descriptions: Record<string, string> = {
  EPERM: 'operation not permitted',
  ENOENT: 'no such file or directory',
  ESRCH: 'no such process',
  EINTR: 'interrupted',
  EIO: 'input/output error',
  EBADF: 'bad file descriptor',
  EAGAIN: 'resource temporarily unavailable',
  ENOMEM: 'out of memory',
  EACCES: 'permission denied',
  EBUSY: 'device or resource busy',
  EEXIST: 'already exists',
  ENODEV: 'no such device',
  ENOTDIR: 'not a directory',
  EINVAL: 'invalid argument',
  ENOSPC: 'no space left on device',
  ERANGE: 'out of range',
  ENAMETOOLONG: 'name too long',
  EMSGSIZE: 'message too long',
  EPROTONOSUPPORT: 'protocol not supported',
  EOPNOTSUPP: 'operation not supported (by this kernel or device)',
  EAFNOSUPPORT: 'address family not supported',
  EADDRINUSE: 'address in use',
  EADDRNOTAVAIL: 'address not available',
  ENETUNREACH: 'network unreachable',
  ENOBUFS: 'no buffer space available',
  ETIMEDOUT: 'timed out',
  EHOSTUNREACH: 'host unreachable',
};

export function errnoDescription(errno: number): string {
  const name = errnoName(errno);
  const text = descriptions[name];
  return text ? `${name}: ${text}` : name;
}

/** A failed system call, carrying the errno so callers can branch on it (EEXIST, ENOENT, ...). */
export class SysError extends Error {
  readonly errno: number;
  readonly code: string;
  readonly syscall: string;
  constructor(syscall: string, errno: number, detail?: string) {
    super(`${syscall}${detail ? ` ${detail}` : ''}: ${errnoDescription(errno)}`);
    this.name = 'SysError';
    this.errno = errno;
    this.code = errnoName(errno);
    this.syscall = syscall;
  }
}
