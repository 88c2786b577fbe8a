/** 64-bit FNV-1a as 16 hex digits: cheap (node:crypto costs ~3.5 ms to load) and stable across releases. */
export function fnv1a(s: string): string {
  let h = 0xcbf29ce484222325n;
  for (const b of Buffer.from(s)) {
    h ^= BigInt(b);
    h = (h * 0x100000001b3n) & 0xffffffffffffffffn;
  }
  return h.toString(16).padStart(16, '0');
}

/** The kernel's limit on an interface name (IFNAMSIZ - 1). */
const IFNAME_MAX = 15;

/**
 * The host end of a container's veth, derived from the attachment so DEL can find it even when the
 * container's namespace is gone: the plugin's prefix, then hex digits of a hash of container ID and
 * interface up to 15 bytes, the kernel's limit ("veth" + 11 digits for tether-bridge). Each plugin has
 * its own prefix, so two plugins never fight over one name and an operator sees which plugin made a link.
 */
export function hostVethName(containerID: string, ifname: string, prefix = 'veth'): string {
  if (prefix.length < 1 || prefix.length > 7) throw new Error(`host veth prefix ${JSON.stringify(prefix)} must be 1 to 7 characters`);
  return `${prefix}${fnv1a(`${containerID}/${ifname}`).slice(0, IFNAME_MAX - prefix.length)}`;
}
