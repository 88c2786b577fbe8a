// The bundler hoists every static import to the top of the single-file binary, so a builtin imported
// anywhere is loaded on every exec. node:crypto and node:net cost ~3.5 ms each, child_process ~1 ms
// (measured in the compiled binary), so those are fetched here, at first use, instead.
// process.getBuiltinModule exists in Node >= 20.16 and in Bun.

export const childProcess = () => process.getBuiltinModule('node:child_process');
export const nodeCrypto = () => process.getBuiltinModule('node:crypto');
export const nodeNet = () => process.getBuiltinModule('node:net');
export const nodeDgram = () => process.getBuiltinModule('node:dgram');
export const nodeHttp = () => process.getBuiltinModule('node:http');
