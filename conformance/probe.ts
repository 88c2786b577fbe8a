import { nodeDgram, nodeNet } from '../lib/builtin.js';

// A tiny traffic endpoint the harness runs inside test namespaces: an echo server (TCP and UDP) and
// a client that expects its payload back. Bounded in time, talks only to the address it is given.

function arg(argv: string[], name: string): string | undefined {
  const i = argv.indexOf(`--${name}`);
  return i >= 0 ? argv[i + 1] : undefined;
}

function serve(argv: string[]): Promise<number> {
  const ip = arg(argv, 'ip') ?? '0.0.0.0';
  const port = Number(arg(argv, 'port') ?? 7777);
  const seconds = Number(arg(argv, 'seconds') ?? 20);
  // --reply peer answers with the address the connection came from (to see masquerading) instead of echoing.
  const peer = arg(argv, 'reply') === 'peer';
  return new Promise((resolve) => {
    const tcp = nodeNet().createServer((s) => { s.on('data', (d) => s.end(peer ? `peer ${s.remoteAddress}` : d)); s.on('error', () => {}); });
    const udp = nodeDgram().createSocket(ip.includes(':') ? 'udp6' : 'udp4');
    udp.on('message', (m, r) => udp.send(peer ? `peer ${r.address}` : m, r.port, r.address));
    let listening = 0;
    const ready = () => { if (++listening === 2) process.stdout.write(`ready ${ip} ${port}\n`); };
    const finish = (code: number) => { tcp.close(); udp.close(); resolve(code); };
    tcp.on('error', (e) => { process.stderr.write(`probe: tcp ${e.message}\n`); finish(1); });
    udp.on('error', (e) => { process.stderr.write(`probe: udp ${e.message}\n`); finish(1); });
    tcp.listen(port, ip, ready);
    udp.bind(port, ip, ready);
    setTimeout(() => finish(0), seconds * 1000).unref();
    process.stdin.on('end', () => finish(0));
    process.stdin.resume();
  });
}

function connectTcp(ip: string, port: number, payload: string, timeoutMs: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const s = nodeNet().createConnection({ host: ip, port });
    let got = '';
    const timer = setTimeout(() => { s.destroy(); reject(new Error(`tcp ${ip}:${port}: no echo within ${timeoutMs} ms`)); }, timeoutMs);
    s.on('connect', () => s.write(payload));
    s.on('data', (d) => { got += d.toString(); });
    s.on('end', () => { clearTimeout(timer); resolve(got); });
    s.on('error', (e) => { clearTimeout(timer); reject(new Error(`tcp ${ip}:${port}: ${e.message}`)); });
  });
}

function connectUdp(ip: string, port: number, payload: string, timeoutMs: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const s = nodeDgram().createSocket(ip.includes(':') ? 'udp6' : 'udp4');
    let tries = 0;
    // UDP may be dropped while neighbours resolve; resend a few times within the budget.
    const send = () => { tries++; s.send(payload, port, ip); };
    const resend = setInterval(send, Math.max(100, timeoutMs / 5));
    const timer = setTimeout(() => { clearInterval(resend); s.close(); reject(new Error(`udp ${ip}:${port}: no echo within ${timeoutMs} ms (${tries} datagrams)`)); }, timeoutMs);
    s.on('message', (m) => { clearTimeout(timer); clearInterval(resend); s.close(); resolve(m.toString()); });
    s.on('error', (e) => { clearTimeout(timer); clearInterval(resend); reject(new Error(`udp ${ip}:${port}: ${e.message}`)); });
    send();
  });
}

async function connect(argv: string[]): Promise<number> {
  const proto = arg(argv, 'proto') ?? 'tcp';
  const ip = arg(argv, 'ip');
  const port = Number(arg(argv, 'port') ?? 7777);
  const timeoutMs = Number(arg(argv, 'timeout-ms') ?? 3000);
  if (!ip) { process.stderr.write('probe connect: --ip is required\n'); return 2; }
  const payload = `tether-probe-${process.pid}-${Date.now()}`;
  try {
    const got = await (proto === 'udp' ? connectUdp : connectTcp)(ip, port, payload, timeoutMs);
    if (argv.includes('--print')) { process.stdout.write(`got ${got}\n`); return 0; }
    if (got !== payload) throw new Error(`${proto} ${ip}:${port}: echo mismatch (${JSON.stringify(got.slice(0, 80))})`);
    process.stdout.write(`ok ${proto} ${ip} ${port}\n`);
    return 0;
  } catch (e) {
    process.stdout.write(`fail ${(e as Error).message}\n`);
    return 1;
  }
}

export async function probeMain(argv: string[]): Promise<number> {
  if (argv[0] === 'serve') return serve(argv.slice(1));
  if (argv[0] === 'connect') return connect(argv.slice(1));
  process.stderr.write('usage: tether probe serve --ip A --port P [--seconds N] | connect --proto tcp|udp --ip A --port P\n');
  return 2;
}
