// The few bun:ffi declarations the Bun backend uses; the full bun-types package would clash with @types/node.
declare module 'bun:ffi' {
  export const FFIType: {
    readonly i32: number; readonly u32: number; readonly i64: number; readonly u64: number;
    readonly ptr: number; readonly cstring: number; readonly void: number;
  };
  export type Pointer = number & { __pointer__: null };
  export function dlopen<T extends Record<string, { args: readonly number[]; returns: number }>>(
    path: string, symbols: T,
  ): { symbols: { [K in keyof T]: (...args: any[]) => any }; close(): void };
  export const read: { i32(ptr: Pointer, offset: number): number; i64(ptr: Pointer, offset: number): bigint };
  export function ptr(view: ArrayBufferView): Pointer;
}
