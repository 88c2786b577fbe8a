import * as C from './constants.js';
import { BgpError } from './messages.js';

/**
 * Cuts a TCP byte stream into BGP messages by their length field: a message may arrive split over
 * several segments, or several in one. A bad marker or length throws the header NOTIFICATION (1/1,
 * 1/2); after that the stream is out of sync and the session must end.
 */
export class Framer {
  private buf: Buffer = Buffer.alloc(0);

  /** Appends data and returns every message now complete (header included), in order. */
  push(data: Uint8Array): Buffer[] {
    this.buf = this.buf.length ? Buffer.concat([this.buf, data]) : Buffer.from(data);
    const out: Buffer[] = [];
    let o = 0;
    while (this.buf.length - o >= C.HEADER_LEN) {
      for (let i = 0; i < 16; i++) {
        if (this.buf[o + i] !== 0xff) throw new BgpError(C.ERR_HEADER, C.ERR_HEADER_NOT_SYNCHRONIZED, 'message header marker is not all ones');
      }
      const len = this.buf.readUInt16BE(o + 16);
      if (len < C.HEADER_LEN || len > C.MAX_MESSAGE_LEN) {
        throw new BgpError(C.ERR_HEADER, C.ERR_HEADER_BAD_LENGTH, `message length ${len} outside ${C.HEADER_LEN}..${C.MAX_MESSAGE_LEN}`, this.buf.subarray(o + 16, o + 18));
      }
      if (this.buf.length - o < len) break;
      // Copy: the caller may keep a message while later data reuses nothing of ours.
      out.push(Buffer.from(this.buf.subarray(o, o + len)));
      o += len;
    }
    this.buf = o === this.buf.length ? Buffer.alloc(0) : this.buf.subarray(o);
    return out;
  }

  /** Bytes held waiting for the rest of a message. */
  get pending(): number { return this.buf.length; }
}
