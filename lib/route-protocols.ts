// The routing protocol numbers (rtm_protocol) tether marks its kernel routes with. Each program lists,
// replaces and deletes only routes under its own number, so each job needs a number nobody else uses:
// not the kernel's or iproute2's rt_protos (zebra 11, bird 12, keepalived 18, babel 42, ovn 84,
// openr 99, bgp 186, isis 187, ospf 188, rip 189, eigrp 192), not FRR's rt_protos.d (186-198), not
// Calico's 80. `ip route show proto N` lists each set.

/** tetherd's VXLAN mode: one route per other node's subnet, via its VTEP (or directly on the underlay). */
export const RTPROT_TETHER_VXLAN = 199;

/**
 * tether-bgp-route's host routes to its containers (/32 and /128 behind the veth): tetherd's BGP mode
 * finds every local pod address, borrowed ones included, with one dump of this protocol. It was 84,
 * which is RTPROT_OVN (ovn-controller's route exchange, in the kernel's uapi headers): a node that also
 * runs OVN would have had OVN's routes announced as pods and its own pod routes shown as OVN's.
 */
export const RTPROT_TETHER_POD = 246;

/** tether's BGP speaker: learned best paths and the blackholes for our own aggregates. */
export const RTPROT_TETHER_BGP = 245;
