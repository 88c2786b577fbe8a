// The backend is picked by package.json "imports" conditions: Bun's bundler takes the "bun" target
// (bun:ffi), Node takes the default (koffi). The compiled binary therefore holds no reference to
// koffi at all, and nothing here runs at import time beyond one dlopen.
export { sys } from '#sys-backend';
export type { Sys } from './types.js';
export { SysError, errnoName } from './errno.js';
