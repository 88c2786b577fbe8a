import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { parseMessages, type NetlinkMessage } from '../../lib/netlink/wire.js';

export interface Vector {
  description: string;
  messages: { dir: 'request' | 'reply'; command: string; hex: string }[];
  ipJson: any;
  ipJsonExtra?: Record<string, any>;
}

// Tests run from build/test/...; the vectors stay in the source tree.
const dir = fileURLToPath(new URL('../../../test/vectors/netlink/', import.meta.url));

export function vector(name: string): Vector {
  return JSON.parse(readFileSync(`${dir}${name}.json`, 'utf8')) as Vector;
}

/** The netlink messages of one captured buffer. Requests keep only their first message: iproute2 sends trailing bytes. */
export function messages(v: Vector, dirn: 'request' | 'reply', nth = 0): NetlinkMessage[] {
  const m = v.messages.filter((x) => x.dir === dirn)[nth];
  if (!m) throw new Error(`vector has no ${dirn} #${nth}`);
  let buf = Buffer.from(m.hex, 'hex');
  if (dirn === 'request') buf = buf.subarray(0, buf.readUInt32LE(0));
  return parseMessages(buf);
}

/** Every reply message across all reply buffers (a dump may span several). */
export function allReplies(v: Vector): NetlinkMessage[] {
  return v.messages.filter((x) => x.dir === 'reply').flatMap((x) => parseMessages(Buffer.from(x.hex, 'hex')));
}
