import { NLM_F_ACK } from './constants.js';
import { GenericNetlink, genlmsghdr } from './genl.js';
import { MessageWriter } from './wire.js';

// ethtool over generic netlink (include/uapi/linux/ethtool_netlink.h, kernel 5.6+), what `ethtool -K` sends.
export const ETHTOOL_GENL_NAME = 'ethtool';
export const ETHTOOL_GENL_VERSION = 1;
export const ETHTOOL_MSG_FEATURES_SET = 12;
export const ETHTOOL_A_FEATURES_HEADER = 1;
export const ETHTOOL_A_FEATURES_WANTED = 3;
export const ETHTOOL_A_HEADER_DEV_NAME = 2;
export const ETHTOOL_A_BITSET_BITS = 3;
export const ETHTOOL_A_BITSETS_BITS_BIT = 1;
export const ETHTOOL_A_BITSET_BIT_NAME = 2;
export const ETHTOOL_A_BITSET_BIT_VALUE = 3;

/**
 * FEATURES_SET for one device: a bit list with mask semantics, so only the named features change,
 * each on when its VALUE flag is present and off when it is absent.
 */
export function encodeFeaturesSet(familyId: number, dev: string, features: Record<string, boolean>): MessageWriter {
  const w = new MessageWriter(familyId, NLM_F_ACK).struct(genlmsghdr(ETHTOOL_MSG_FEATURES_SET, ETHTOOL_GENL_VERSION));
  w.nest(ETHTOOL_A_FEATURES_HEADER, () => w.str(ETHTOOL_A_HEADER_DEV_NAME, dev));
  w.nest(ETHTOOL_A_FEATURES_WANTED, () => w.nest(ETHTOOL_A_BITSET_BITS, () => {
    for (const [name, on] of Object.entries(features)) {
      w.nest(ETHTOOL_A_BITSETS_BITS_BIT, () => {
        w.str(ETHTOOL_A_BITSET_BIT_NAME, name);
        if (on) w.flag(ETHTOOL_A_BITSET_BIT_VALUE);
      });
    }
  }));
  return w;
}

/** Sets offload features of a device in the calling thread's namespace, like `ethtool -K dev name on|off`. */
export function setFeatures(dev: string, features: Record<string, boolean>): void {
  GenericNetlink.within((g) => { g.exec(encodeFeaturesSet(g.family(ETHTOOL_GENL_NAME), dev, features)); });
}
