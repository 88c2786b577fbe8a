// The flags every Bun-compiled tether executable is built with; the benchmark's runtime-floor binary
// uses the same ones, so the floor it reports is the one our binary stands on.
// --bytecode: the binary carries precompiled bytecode. Measured here (cnictl --version): ESM without
// bytecode ~45 ms; ESM with it ~13 ms (top-level await defeated it: there is none now); CommonJS with it
// ~9.0 ms; ESM with it and --splitting ~7.9 ms and 2 MiB less resident: each program's code is a chunk
// loaded only when that program runs.
export const COMPILE_FLAGS = [
  'build', '--compile', '--format=esm', '--splitting', '--bytecode', '--minify-syntax', '--minify-whitespace',
  // A plugin runs in whatever directory the runtime has: it must never pick up a .env or bunfig.toml there.
  '--no-compile-autoload-dotenv', '--no-compile-autoload-bunfig',
  // A plugin lives ~20 ms: tiering code up to the JIT costs more than it returns. A 1000x threshold saves
  // ~3 MiB per exec and ~1 ms (measured on ADD). The JIT cannot be switched off: bun:ffi needs it.
  '--compile-jit-policy=1000',
];
