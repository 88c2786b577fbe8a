/** Well-known CNI error codes (spec section "Error"), plus the Go library's 999 for internal errors. */
export const ErrorCode = {
  IncompatibleVersion: 1,
  UnsupportedField: 2,
  UnknownContainer: 3,
  InvalidEnvironment: 4,
  IOFailure: 5,
  DecodingFailure: 6,
  InvalidNetworkConfig: 7,
  TryAgainLater: 11,
  NotAvailable: 50,
  NotAvailableLimitedConnectivity: 51,
  /** tether's own (the spec leaves 100+ to plugins): CHECK found the attachment differs from what ADD made. */
  CheckFailed: 100,
  Internal: 999,
} as const;

/** The error object a plugin prints on stdout (and a runtime reads back). */
export interface ErrorResult {
  cniVersion?: string;
  code: number;
  msg: string;
  details?: string;
}

export class CniError extends Error {
  readonly code: number;
  readonly details: string;
  constructor(code: number, msg: string, details = '') {
    super(msg);
    this.name = 'CniError';
    this.code = code;
    this.details = details;
  }

  toJSON(cniVersion?: string): ErrorResult {
    const out: ErrorResult = cniVersion ? { cniVersion, code: this.code, msg: this.message } : { code: this.code, msg: this.message };
    if (this.details) out.details = this.details;
    return out;
  }
}

/** Code 7 naming the field, what was expected and what was found, so a person can fix the config. */
export function invalidConfig(field: string, expected: string, got?: unknown): CniError {
  const found = got === undefined ? '' : `, got ${JSON.stringify(got)}`;
  return new CniError(ErrorCode.InvalidNetworkConfig, `invalid network config: "${field}" ${expected}${found}`, field);
}

/** Wraps anything thrown into a CniError; non-CNI errors become 999 with their message, never a stack. */
export function asCniError(e: unknown): CniError {
  if (e instanceof CniError) return e;
  const msg = e instanceof Error ? e.message : String(e);
  return new CniError(ErrorCode.Internal, msg);
}
