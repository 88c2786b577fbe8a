import { CniError } from '../lib/cni/errors.js';

/**
 * A refusal dockerd passes on to the user (`Error response from daemon: ...`): the text must say what
 * was wrong and what to do. status 400 for a bad request, 404 for an unknown method, 500 otherwise.
 */
export class DriverError extends Error {
  constructor(msg: string, readonly status = 500) { super(msg); this.name = 'DriverError'; }
}

/** The text an error becomes on the wire; a CNI error from the shared code keeps its message and details. */
export function errorText(e: unknown): string {
  if (e instanceof DriverError) return e.message;
  if (e instanceof CniError) return e.details && !e.message.includes(e.details) ? `${e.message} (${e.details})` : e.message;
  return e instanceof Error ? e.message : String(e);
}

export const badRequest = (msg: string) => new DriverError(msg, 400);
