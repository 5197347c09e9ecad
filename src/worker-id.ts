import { randomBytes } from 'node:crypto';

/** A worker id: `w` and 8 hex digits. It starts with a letter so a unique socket name never looks like a slot's published name. */
export const WORKER_ID_RE = /^w[0-9a-f]{8}$/;
export const WORKER_ID_LENGTH = 9;

export function newWorkerId(): string {
  return `w${randomBytes(4).toString('hex')}`;
}
