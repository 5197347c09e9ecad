/**
 * What Node's own handling of a worker's IPC channel cannot take, made one line instead of a
 * stack per message: a line that is not JSON makes its parser throw, an uncaught exception in
 * the daemon per message, which a worker can send at its own rate. (Forged acknowledgements of
 * descriptors: net/handle-ack-guard.ts.)
 */
import { FORGED_WARNING_INTERVAL_MS } from '../../net/handle-ack-guard';
import { RepeatedWarning } from '../../repeated-warning';

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
    FORGED_WARNING_INTERVAL_MS,
  );
  return (err) => {
    if (!isChannelParseError(err)) return false;
    warning.note();
    return true;
  };
}
