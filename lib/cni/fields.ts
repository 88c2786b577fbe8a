/**
 * A field by its JSON name, or spelt in another case: containerd 1.6 sends its Go field names
 * ("HostPort", "ContainerPort", "Protocol", "HostIP"), which Go's decoder (so the reference plugins) accepts.
 */
export function fieldOf(o: Record<string, unknown>, name: string): unknown {
  if (o[name] !== undefined) return o[name];
  const lower = name.toLowerCase();
  const k = Object.keys(o).find((x) => x.toLowerCase() === lower);
  return k === undefined ? undefined : o[k];
}
