import type { Sys } from './types.js';

export type { Sys } from './types.js';
export { SysError, errnoName } from './errno.js';

// The backend is chosen once, by runtime. Only the chosen module is evaluated, so the Bun binary
// never loads koffi and Node never sees bun:ffi.
export const sys: Sys = 'Bun' in globalThis
  ? (await import('./bun.js')).sys
  : (await import('./koffi.js')).sys;
