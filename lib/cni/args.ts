import { CniError, ErrorCode } from './errors.js';

/**
 * CNI_ARGS ("K=V;K2=V2"). Unknown keys are kept and ignored by whoever does not know them, as
 * Kubernetes runtimes expect (they always send pod identity keys). A pair without "=" is an error:
 * that is a broken runtime, not an unknown key. Values may contain "=" (split at the first one).
 */
export function parseCniArgs(raw: string | undefined): [string, string][] {
  if (!raw) return [];
  const out: [string, string][] = [];
  for (const part of raw.split(';')) {
    if (part === '') continue;
    const eq = part.indexOf('=');
    if (eq <= 0) {
      throw new CniError(ErrorCode.InvalidEnvironment, `CNI_ARGS: "${part}" is not a KEY=VALUE pair`, 'CNI_ARGS');
    }
    out.push([part.slice(0, eq), part.slice(eq + 1)]);
  }
  return out;
}

export function formatCniArgs(args: [string, string][]): string {
  return args.map(([k, v]) => `${k}=${v}`).join(';');
}
