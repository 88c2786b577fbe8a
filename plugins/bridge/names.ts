/** 64-bit FNV-1a as 16 hex digits: cheap (node:crypto costs ~3.5 ms to load) and stable across releases. */
export function fnv1a(s: string): string {
  let h = 0xcbf29ce484222325n;
  for (const b of Buffer.from(s)) {
    h ^= BigInt(b);
    h = (h * 0x100000001b3n) & 0xffffffffffffffffn;
  }
  return h.toString(16).padStart(16, '0');
}

/**
 * The host end of a container's veth, derived from the attachment so DEL can find it even when the
 * container's namespace is gone: "veth" + 11 hex digits = 15 bytes, the kernel's limit.
 */
export function hostVethName(containerID: string, ifname: string): string {
  return `veth${fnv1a(`${containerID}/${ifname}`).slice(0, 11)}`;
}
