/**
 * A one-line description of anything thrown, without a stack trace. On its own so that the
 * app-side library and the preload can use it without loading the daemon's log and stdio.
 */
export function errorMessage(err: unknown): string {
  if (err instanceof Error) return err.message;
  return String(err);
}
