/**
 * A child's acknowledgements of descriptors never sent, kept from Node. A child writes what it
 * wants on its IPC channel: a `NODE_HANDLE_ACK` (or `NACK`) while no descriptor waits for one
 * makes Node's internal listener fail an assertion, an uncaught exception in the parent (the
 * daemon, a pool's front) per message, at the child's rate.
 */
import type { ChildProcess } from 'node:child_process';
import { RepeatedWarning } from '../repeated-warning';

/** At most one line per interval about a child's forged messages, with a count. */
export const FORGED_WARNING_INTERVAL_MS = 10_000;

type InternalListener = (message: unknown, handle?: unknown) => void;

/** A handle acknowledgement of Node's protocol (it confirms, or asks again for, a descriptor sent). */
function isHandleAck(message: unknown): boolean {
  const cmd = (message as { cmd?: unknown } | null)?.cmd;
  return cmd === 'NODE_HANDLE_ACK' || cmd === 'NODE_HANDLE_NACK';
}

/**
 * Keeps a child's acknowledgements of no descriptor in flight from Node's listener, which
 * asserts that one is (`_handleQueue`, set while a descriptor waits for its ACK): each such
 * message is ignored and counted in `warn`'s line instead (the first at once, then a count per
 * interval), which names `sender` (who did not send the descriptor). Call right after the
 * spawn, while Node's listener is the only one.
 */
export function guardHandleAcks(child: ChildProcess, warn: (line: string) => void, sender: string): void {
  const node = child.listeners('internalMessage') as InternalListener[];
  if (node.length === 0) return;
  const warning = new RepeatedWarning(
    warn,
    (n) =>
      `sent ${n === 1 ? 'an acknowledgement' : `${n} acknowledgements`} of a descriptor ${sender} did not send (NODE_HANDLE_ACK); ignored`,
    FORGED_WARNING_INTERVAL_MS,
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
