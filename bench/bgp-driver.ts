import * as net from 'node:net';
import { parseCIDR, parseIP } from '../lib/ip/addr.js';
import { encodeMessage, endOfRibMessage } from '../lib/bgp/codec.js';
import { Framer } from '../lib/bgp/framer.js';
import { emptyAttributes, emptyCapabilities } from '../lib/bgp/messages.js';

// The benchmark's peers: PEERS minimal iBGP sessions from 198.18.1.<i> to the speaker at 198.18.0.1,
// each announcing one /26 and ROUTES-1 borrowed /32s, then only keepalives. Messages are encoded once;
// the driver does as little as possible so the speaker's cost is what gets measured. Runs until stdin ends.

const [peers, routes, hold] = process.argv.slice(2).map(Number);

function session(i: number): void {
  const id = `198.18.1.${i}`;
  const caps = emptyCapabilities();
  caps.multiprotocol = [{ afi: 1, safi: 1 }];
  caps.as4 = 64512;
  const open = encodeMessage({ type: 'open', version: 4, myAs: 64512, holdTime: hold, routerId: id, capabilities: caps });
  const keepalive = encodeMessage({ type: 'keepalive' });
  const attrs = { ...emptyAttributes(), origin: 0, asPath: [], nextHop: parseIP(id)!, localPref: 100 };
  const nlri = [parseCIDR(`10.200.${i}.0/26`)!, ...Array.from({ length: routes - 1 }, (_, k) => parseCIDR(`10.201.${i}.${k + 1}/32`)!)];
  const update = Buffer.concat([encodeMessage({ type: 'update', withdrawn: [], attributes: attrs, nlri }), encodeMessage(endOfRibMessage(1, 1))]);
  const connect = () => {
    const s = net.connect({ host: '198.18.0.1', port: 179, localAddress: id });
    const framer = new Framer();
    let timer: NodeJS.Timeout | undefined;
    let state = 0;
    s.on('connect', () => s.write(open));
    s.on('data', (d) => {
      for (const m of framer.push(d)) {
        if (state === 0 && m[18] === 1) { s.write(keepalive); state = 1; }
        else if (state === 1 && m[18] === 4) {
          state = 2;
          s.write(update);
          timer = setInterval(() => s.write(keepalive), (hold / 3) * 1000);
        }
      }
    });
    s.on('error', () => {});
    s.on('close', () => { clearInterval(timer); setTimeout(connect, 1000); });
  };
  connect();
}

for (let i = 1; i <= peers; i++) session(i);
process.stdin.on('end', () => process.exit(0));
process.stdin.resume();
