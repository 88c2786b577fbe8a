// Identifier rules shared by plugins (checking what they are given) and cnictl (checking what it sends),
// the same as the reference skeleton's, so names are accepted or refused identically.

const ID = /^[a-zA-Z0-9][a-zA-Z0-9_.-]*$/;

/** null when valid, otherwise what is wrong. */
export function containerIDProblem(id: string): string | null {
  if (!id) return 'is empty';
  if (!ID.test(id)) return 'must start with a letter or digit and contain only letters, digits, "_", "." and "-"';
  return null;
}

export function networkNameProblem(name: string): string | null {
  return containerIDProblem(name);
}

/** Linux interface names: at most 15 bytes, and no "/", ":" or white space (they would break sysfs paths). */
export function ifnameProblem(name: string): string | null {
  if (!name) return 'is empty';
  if (Buffer.byteLength(name) > 15) return `is ${Buffer.byteLength(name)} bytes long; the kernel allows at most 15`;
  if (name === '.' || name === '..') return `cannot be "${name}"`;
  if (/[/:\s]/.test(name)) return 'must not contain "/", ":" or white space';
  // The kernel would take them, but a name that moves a terminal's cursor has no place in logs or tables.
  if (/[\x00-\x1f\x7f]/.test(name)) return 'must not contain control characters';
  return null;
}
