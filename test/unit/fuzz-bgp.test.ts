import test from 'ava';
import { fileURLToPath } from 'node:url';
import * as C from '../../lib/bgp/constants.js';
import { decodeMessage, encodeMessage } from '../../lib/bgp/codec.js';
import { Framer } from '../../lib/bgp/framer.js';
import { BgpError } from '../../lib/bgp/messages.js';
import { readTcpStreams } from '../helpers/pcap.js';
import { xorshift32 } from '../helpers/random.js';

// BGP messages from a hostile or broken peer, seeded so a failure replays: the captured sessions'
// messages with bytes flipped, lengths rewritten (message, attribute, NLRI), attribute flags changed,
// truncated and cut into arbitrary segments. Every case must end in a decoded message (RFC 7606 may
// mark it treat-as-withdraw) or a BgpError carrying a valid NOTIFICATION code, never another exception.

const dir = fileURLToPath(new URL('../../../test/vectors/bgp/', import.meta.url));
const captured: Buffer[] = [];
for (const file of ['bgp-v4.pcap', 'bgp-ds.pcap', 'bgp-ebgp.pcap', 'bgp-mini.pcap']) {
  for (const s of readTcpStreams(dir + file)) {
    const f = new Framer();
    captured.push(...s.segments.flatMap((seg) => f.push(seg)));
  }
}

const rng = xorshift32;

/** One hostile variant of a message: the framing stays valid unless the mutation is about framing. */
function mutate(src: Buffer, r: () => number): Buffer {
  let b = Buffer.from(src);
  const at = (lo = C.HEADER_LEN) => lo + Math.floor(r() * Math.max(1, b.length - lo));
  switch (Math.floor(r() * 7)) {
    case 0: for (let i = 0, n = 1 + Math.floor(r() * 4); i < n && b.length > C.HEADER_LEN; i++) b[at()] = Math.floor(r() * 256); break;
    case 1: b = b.subarray(0, C.HEADER_LEN + Math.floor(r() * (b.length - C.HEADER_LEN))); break; // truncated body
    case 2: if (b.length > C.HEADER_LEN + 2) b.writeUInt16BE(Math.floor(r() * 65536), at() - 1 > C.HEADER_LEN ? at() - 1 : C.HEADER_LEN); break; // a length field somewhere
    case 3: if (b.length > C.HEADER_LEN + 4) b[C.HEADER_LEN + 4 + Math.floor(r() * 8)] ^= [0x80, 0x40, 0x20, 0x10][Math.floor(r() * 4)]; break; // attribute flags
    case 4: b = Buffer.concat([b, Buffer.from(Array.from({ length: Math.floor(r() * 40) }, () => Math.floor(r() * 256)))]); break; // trailing junk
    case 5: b[18] = Math.floor(r() * 8); break; // another message type
    default: b = Buffer.concat([b.subarray(0, C.HEADER_LEN), Buffer.from(Array.from({ length: Math.floor(r() * 64) }, () => Math.floor(r() * 256)))]); // random body
  }
  if (b.length >= C.HEADER_LEN) b.writeUInt16BE(Math.min(b.length, 65535), 16);
  return b;
}

// Codes 1-6 (RFC 4271) and 7, ROUTE-REFRESH message error (RFC 7313).
const validNotification = (e: BgpError) => e.code >= 1 && e.code <= 7 && Number.isInteger(e.subcode);

test('10,000 mangled messages: decoded (maybe treat-as-withdraw) or a BgpError with a real NOTIFICATION, never a crash', (t) => {
  t.true(captured.length > 60, 'the captures hold enough messages');
  const r = rng(0xb9b);
  const outcome = { decoded: 0, withdrawn: 0, notification: 0 };
  for (let i = 0; i < 10_000; i++) {
    const m = mutate(captured[Math.floor(r() * captured.length)], r);
    try {
      const d = decodeMessage(m, { as4: r() < 0.8 });
      if (d.treatAsWithdraw) outcome.withdrawn++; else outcome.decoded++;
      // What decoded must encode again (the speaker re-advertises nothing it cannot write).
      encodeMessage(d.message);
    } catch (e) {
      if (!(e instanceof BgpError)) { t.fail(`case ${i}: ${(e as Error).name}: ${(e as Error).message} for ${m.toString('hex').slice(0, 120)}`); continue; }
      if (!validNotification(e)) t.fail(`case ${i}: NOTIFICATION ${e.code}/${e.subcode} is not one a peer can be sent`);
      outcome.notification++;
    }
  }
  t.log(JSON.stringify(outcome));
  t.true(outcome.notification > 500 && outcome.decoded + outcome.withdrawn > 500, 'the mutations reach both the decoders and the checks');
});

test('10,000 hostile streams cut at random points: the framer yields whole messages or a header NOTIFICATION, never a crash or a hang', (t) => {
  const r = rng(0xf7a);
  for (let i = 0; i < 10_000; i++) {
    const parts = Array.from({ length: 1 + Math.floor(r() * 4) }, () => (r() < 0.8 ? captured[Math.floor(r() * captured.length)] : mutate(captured[Math.floor(r() * captured.length)], r)));
    let stream = Buffer.concat(parts);
    if (r() < 0.2) stream[Math.floor(r() * stream.length)] = Math.floor(r() * 256); // a broken marker or length, maybe
    const f = new Framer();
    let got = 0;
    try {
      for (let o = 0; o < stream.length;) {
        const n = 1 + Math.floor(r() * 200);
        for (const msg of f.push(stream.subarray(o, o + n))) {
          got += msg.length;
          const len = msg.readUInt16BE(16);
          if (len !== msg.length) t.fail(`case ${i}: framed ${msg.length} bytes for a length field of ${len}`);
        }
        o += n;
      }
      if (got + f.pending !== stream.length) t.fail(`case ${i}: ${stream.length} bytes in, ${got} framed + ${f.pending} pending`);
    } catch (e) {
      if (!(e instanceof BgpError) || e.code !== C.ERR_HEADER) t.fail(`case ${i}: ${(e as Error).name}: ${(e as Error).message}`);
    }
  }
  t.pass();
});
