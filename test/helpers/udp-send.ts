import { createSocket } from 'node:dgram';

// Run as a child inside a test namespace: sends each hex argument after the first two (host, port) as
// one UDP datagram, then exits.
const [host, port, ...datagrams] = process.argv.slice(2);
const s = createSocket(host.includes(':') ? 'udp6' : 'udp4');
let left = datagrams.length;
for (const d of datagrams) s.send(Buffer.from(d, 'hex'), Number(port), host, () => { if (--left === 0) s.close(); });
if (!datagrams.length) s.close();
