import { closing, NetlinkSocket } from './socket.js';
import { Attrs, MessageWriter } from './wire.js';
import { NLM_F_ACK } from './constants.js';

// Generic netlink (include/uapi/linux/genetlink.h): families such as ethtool get a message type at run
// time, asked of the controller family by name.
export const NETLINK_GENERIC = 16;
export const GENL_ID_CTRL = 0x10;
export const CTRL_CMD_GETFAMILY = 3;
export const CTRL_ATTR_FAMILY_ID = 1;
export const CTRL_ATTR_FAMILY_NAME = 2;
const GENL_HDRLEN = 4;

/** struct genlmsghdr: cmd, version, reserved. */
export function genlmsghdr(cmd: number, version: number): Uint8Array {
  return new Uint8Array([cmd, version, 0, 0]);
}

export function encodeGetFamily(name: string): MessageWriter {
  return new MessageWriter(GENL_ID_CTRL, NLM_F_ACK).struct(genlmsghdr(CTRL_CMD_GETFAMILY, 1)).str(CTRL_ATTR_FAMILY_NAME, name);
}

/** The family id in a CTRL_CMD_NEWFAMILY answer. */
export function decodeFamilyId(payload: Buffer): number | undefined {
  return new Attrs(payload, GENL_HDRLEN).u16(CTRL_ATTR_FAMILY_ID);
}

/** A generic netlink socket in the calling thread's namespace, resolving family names once each. */
export class GenericNetlink {
  private readonly sock: NetlinkSocket;
  private readonly ids = new Map<string, number>();
  private constructor(sock: NetlinkSocket) { this.sock = sock; }

  static open(): GenericNetlink { return new GenericNetlink(NetlinkSocket.open(NETLINK_GENERIC)); }
  /** A socket for the length of fn, closed after (see closing). */
  static within<T>(fn: (g: GenericNetlink) => T): T { return closing(GenericNetlink.open(), fn); }

  /** The family's message type; throws (ENOENT from the controller) when the kernel lacks it. */
  family(name: string): number {
    let id = this.ids.get(name);
    if (id === undefined) {
      const reply = this.sock.exec(encodeGetFamily(name))[0];
      id = reply ? decodeFamilyId(reply.payload) : undefined;
      if (id === undefined) throw new Error(`generic netlink family "${name}": no id in the controller's answer`);
      this.ids.set(name, id);
    }
    return id;
  }

  exec(w: MessageWriter) { return this.sock.exec(w); }
  close(): void { this.sock.close(); }
}
