import { NETLINK_NETFILTER, NLM_F_ACK } from './constants.js';
import { closing, NetlinkError, NetlinkSocket } from './socket.js';
import { Attrs, MessageWriter } from './wire.js';

// Just enough nf_tables netlink to ask "does this table exist, and what does its comment say?",
// which is all a per-container ADD needs to confirm a per-network rule set is in place.

const NFNL_SUBSYS_NFTABLES = 10;
const NFT_MSG_GETTABLE = 1;
const NFTA_TABLE_NAME = 1;
const NFTA_TABLE_USERDATA = 6;
const NFTNL_UDATA_TABLE_COMMENT = 0;

export const NFPROTO_INET = 1;
export const NFPROTO_IPV4 = 2;
export const NFPROTO_BRIDGE = 7;

export interface NftTable {
  name: string;
  comment?: string;
}

/** nftables userdata is a list of {u8 type, u8 length, value} records; the comment is a NUL-terminated string. */
function tableComment(udata: Buffer | undefined): string | undefined {
  if (!udata) return undefined;
  for (let off = 0; off + 2 <= udata.length;) {
    const type = udata[off];
    const len = udata[off + 1];
    if (type === NFTNL_UDATA_TABLE_COMMENT) {
      const v = udata.subarray(off + 2, off + 2 + len);
      const nul = v.indexOf(0);
      return v.toString('utf8', 0, nul < 0 ? v.length : nul);
    }
    off += 2 + len;
  }
  return undefined;
}

/** The table, or null when it does not exist (or nf_tables is not loaded yet). Opens its socket in the current namespace. */
export function nftGetTable(family: number, name: string): NftTable | null {
  return closing(NetlinkSocket.open(NETLINK_NETFILTER), (sock) => {
    try {
      const w = new MessageWriter((NFNL_SUBSYS_NFTABLES << 8) | NFT_MSG_GETTABLE, NLM_F_ACK);
      w.struct(Uint8Array.of(family, 0, 0, 0)); // nfgenmsg: family, version 0, res_id 0
      w.str(NFTA_TABLE_NAME, name);
      const [reply] = sock.exec(w);
      if (!reply) return null;
      const a = new Attrs(reply.payload, 4);
      return { name: a.str(NFTA_TABLE_NAME) ?? name, comment: tableComment(a.get(NFTA_TABLE_USERDATA)) };
    } catch (e) {
      if (e instanceof NetlinkError && (e.code === 'ENOENT' || e.code === 'EAFNOSUPPORT' || e.code === 'EPROTONOSUPPORT')) return null;
      throw e;
    }
  });
}
