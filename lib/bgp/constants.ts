// BGP-4 numbers (RFC 4271 and the capability / attribute RFCs named beside each group).

export const BGP_PORT = 179;
export const HEADER_LEN = 19;
export const MAX_MESSAGE_LEN = 4096;
export const AS_TRANS = 23456; // RFC 6793: My AS in OPEN when the real ASN needs 4 octets

export const MSG_OPEN = 1;
export const MSG_UPDATE = 2;
export const MSG_NOTIFICATION = 3;
export const MSG_KEEPALIVE = 4;
export const MSG_ROUTE_REFRESH = 5;

export const AFI_IPV4 = 1;
export const AFI_IPV6 = 2;
export const SAFI_UNICAST = 1;

// OPEN optional parameter and capability codes (RFC 5492, 4760, 2918, 4724, 6793, 7313).
export const OPT_PARAM_CAPABILITIES = 2;
export const CAP_MULTIPROTOCOL = 1;
export const CAP_ROUTE_REFRESH = 2;
export const CAP_GRACEFUL_RESTART = 64;
export const CAP_AS4 = 65;
export const CAP_ENHANCED_ROUTE_REFRESH = 70;

// Path attribute flags and types.
export const FLAG_OPTIONAL = 0x80;
export const FLAG_TRANSITIVE = 0x40;
export const FLAG_PARTIAL = 0x20;
export const FLAG_EXTENDED = 0x10;

export const ATTR_ORIGIN = 1;
export const ATTR_AS_PATH = 2;
export const ATTR_NEXT_HOP = 3;
export const ATTR_MED = 4;
export const ATTR_LOCAL_PREF = 5;
export const ATTR_ATOMIC_AGGREGATE = 6;
export const ATTR_AGGREGATOR = 7;
export const ATTR_COMMUNITIES = 8;
export const ATTR_ORIGINATOR_ID = 9;
export const ATTR_CLUSTER_LIST = 10;
export const ATTR_MP_REACH = 14;
export const ATTR_MP_UNREACH = 15;
export const ATTR_AS4_PATH = 17;

export const ORIGIN_IGP = 0;
export const ORIGIN_EGP = 1;
export const ORIGIN_INCOMPLETE = 2;

export const AS_SET = 1;
export const AS_SEQUENCE = 2;
export const AS_CONFED_SEQUENCE = 3;
export const AS_CONFED_SET = 4;

// NOTIFICATION error codes and the subcodes we send (RFC 4271 6.x, 4486, 6608).
export const ERR_HEADER = 1;
export const ERR_HEADER_NOT_SYNCHRONIZED = 1;
export const ERR_HEADER_BAD_LENGTH = 2;
export const ERR_HEADER_BAD_TYPE = 3;

export const ERR_OPEN = 2;
export const ERR_OPEN_UNSUPPORTED_VERSION = 1;
export const ERR_OPEN_BAD_PEER_AS = 2;
export const ERR_OPEN_BAD_BGP_ID = 3;
export const ERR_OPEN_UNSUPPORTED_PARAM = 4;
export const ERR_OPEN_BAD_HOLD_TIME = 6;
export const ERR_OPEN_UNSUPPORTED_CAPABILITY = 7;

export const ERR_UPDATE = 3;
export const ERR_UPDATE_MALFORMED_ATTRIBUTES = 1;
export const ERR_UPDATE_UNRECOGNIZED_WELL_KNOWN = 2;
export const ERR_UPDATE_ATTRIBUTE_FLAGS = 4;
export const ERR_UPDATE_ATTRIBUTE_LENGTH = 5;
export const ERR_UPDATE_INVALID_NETWORK = 10;

export const ERR_HOLD_TIMER_EXPIRED = 4;

export const ERR_FSM = 5;
export const ERR_FSM_OPENSENT = 1;
export const ERR_FSM_OPENCONFIRM = 2;
export const ERR_FSM_ESTABLISHED = 3;

export const ERR_CEASE = 6;
export const CEASE_MAX_PREFIXES = 1;
export const CEASE_ADMIN_SHUTDOWN = 2;
export const CEASE_PEER_DECONFIGURED = 3;
export const CEASE_ADMIN_RESET = 4;
export const CEASE_CONNECTION_REJECTED = 5;
export const CEASE_COLLISION = 7;

export const ERR_ROUTE_REFRESH = 7;
export const ERR_ROUTE_REFRESH_BAD_LENGTH = 1;
