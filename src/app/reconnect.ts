/**
 * A worker's way back after the IPC channel to its daemon closed without a shutdown (the daemon
 * crashed, or handed over for an upgrade): a link to the next daemon over the control socket,
 * wired in so that the app notices nothing. `process.on('message')` listeners receive what the
 * next daemon sends (`'shutdown'`, `'resume'`, app messages) exactly as over the channel, and
 * `process.send()` (`'online'`, replies, reports) reaches that daemon. Done by the preload for
 * every worker, library or not (docs/lifecycle.md#adoption).
 */
import { DaemonLink } from './daemon-link.js';

type SendCallback = (err: Error | null) => void;

const NOT_CONNECTED =
  'nodesockd: not connected to a daemon (the one that started this worker is gone, and no other has taken it over yet)';

export function bridgeToNextDaemon(ipcFile: string, workerId: string): DaemonLink {
  const link = new DaemonLink(ipcFile, workerId, (message) => {
    process.emit('message', message, undefined);
  });
  // process.send(message[, sendHandle[, options]][, callback]): the callback is the last function.
  const send = (message: unknown, ...rest: unknown[]): boolean => {
    const callback = [...rest].reverse().find((a): a is SendCallback => typeof a === 'function');
    if (link.send(message, () => callback?.(null))) return true;
    // Node would emit 'error' on process without a callback: a worker must never die because
    // its daemon is gone, so a message that cannot go is dropped (and its callback told).
    if (callback) queueMicrotask(() => callback(new Error(NOT_CONNECTED)));
    return false;
  };
  (process as { send?: unknown }).send = send;
  try {
    Object.defineProperty(process, 'connected', {
      configurable: true,
      enumerable: true,
      get: () => link.connected,
    });
  } catch {
    // Not redefinable on this Node: `process.connected` stays false; process.send still works.
  }
  link.start();
  return link;
}
