import { randomBytes } from 'node:crypto';

/**
 * A worker's id: `w` and 8 hex digits. It names the worker's unique socket, so it starts with a
 * letter: a unique socket name then never looks like a slot's published name (`app.0.sock`).
 */
export const WORKER_ID_LENGTH = 9;
/** The id's pattern without anchors, to embed in a larger pattern (e.g. a socket file name). */
export const WORKER_ID_PATTERN = 'w[0-9a-f]{8}';
export const WORKER_ID_RE = new RegExp(`^${WORKER_ID_PATTERN}$`);

export function newWorkerId(): string {
  return `w${randomBytes(4).toString('hex')}`;
}
