/**
 * What Node's own handling of a worker's IPC channel cannot take, made one line instead of a
 * stack per message. A worker writes what it wants on its channel: a `NODE_HANDLE_ACK` (or
 * `NACK`) for a descriptor the daemon never sent makes Node's internal listener fail an
 * assertion, and a line that is not JSON makes its parser throw; both reach the daemon as
 * uncaught exceptions, one per message, which a worker can send at its own rate.
 */
import type { ChildProcess } from 'node:child_process';
import { RepeatedWarning } from '../../repeated-warning';

/** At most one line per interval about a worker's malformed internal messages, with a count. */
const WARNING_INTERVAL_MS = 10_000;

type InternalListener = (message: unknown, handle?: unknown) => void;

/** A handle acknowledgement of Node's protocol (it confirms, or asks again for, a descriptor sent). */
function isHandleAck(message: unknown): boolean {
  const cmd = (message as { cmd?: unknown } | null)?.cmd;
  return cmd === 'NODE_HANDLE_ACK' || cmd === 'NODE_HANDLE_NACK';
}

/**
 * Keeps a worker's acknowledgements of no descriptor in flight from Node's listener, which
 * asserts that one is (`_handleQueue`, set while a descriptor waits for its ACK): each such
 * message is ignored and counted in `warn`'s line instead. Call right after the spawn, while
 * Node's listener is the only one.
 */
export function guardHandleAcks(child: ChildProcess, warn: (line: string) => void): void {
  const node = child.listeners('internalMessage') as InternalListener[];
  if (node.length === 0) return;
  const warning = new RepeatedWarning(
    warn,
    (n) =>
      `sent ${n === 1 ? 'an acknowledgement' : `${n} acknowledgements`} of a descriptor the daemon did not send (NODE_HANDLE_ACK); ignored`,
    WARNING_INTERVAL_MS,
  );
  for (const listener of node) child.removeListener('internalMessage', listener);
  child.on('internalMessage', (message: unknown, handle?: unknown) => {
    if (
      isHandleAck(message) &&
      !Array.isArray((child as unknown as { _handleQueue?: unknown })._handleQueue)
    ) {
      warning.note();
      return;
    }
    for (const listener of node) listener.call(child, message, handle);
  });
}

/** An error Node's parser of a child's IPC channel threw: a worker wrote a line that is not JSON. */
function isChannelParseError(err: unknown): boolean {
  return (
    err instanceof SyntaxError &&
    /\bparseChannelMessages\b|node:internal\/child_process/.test(err.stack ?? '')
  );
}

/**
 * For the daemon's uncaught-exception handler: true (and counted in one line per interval) for
 * an error a worker caused by writing garbage on its IPC channel, which names no worker.
 */
export function channelGarbageFilter(warn: (line: string) => void): (err: unknown) => boolean {
  const warning = new RepeatedWarning(
    warn,
    (n) =>
      `a worker wrote ${n === 1 ? 'a line' : `${n} lines`} that ${n === 1 ? 'is' : 'are'} not a message on its IPC channel; ignored`,
    WARNING_INTERVAL_MS,
  );
  return (err) => {
    if (!isChannelParseError(err)) return false;
    warning.note();
    return true;
  };
}
