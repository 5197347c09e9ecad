/**
 * The worker's IPC channel to its daemon: sending without ever throwing (the daemon may be
 * gone), and the channel's reference count, so the library's own listeners never keep the
 * process alive while a wait on the daemon does.
 */
import type { WorkerToDaemon } from '../ipc/worker-protocol.js';

/**
 * Send a message to the daemon if the channel is still up. Failures are swallowed: the daemon
 * may have died (workers outlive it: docs/lifecycle.md#when-the-daemon-dies) and a lost status
 * message must never crash the app. `done` is called once the message is written or dropped.
 */
export function sendToDaemon(message: WorkerToDaemon, done?: () => void): void {
  // After a daemon crash process.send goes over the link to the next daemon (reconnect.ts).
  if (typeof process.send !== 'function' || !process.connected) {
    done?.();
    return;
  }
  try {
    process.send(message, undefined, undefined, () => done?.());
  } catch {
    done?.();
  }
}

/** A send to the daemon as a promise: resolves once written or dropped, never rejects. */
export function sent(message: WorkerToDaemon): Promise<void> {
  return new Promise((resolve) => sendToDaemon(message, resolve));
}

/**
 * The IPC channel is reference-counted by Node: each `'message'` listener keeps the process alive.
 * The library's own listener must not, so it takes its count back out. The counted variants are
 * undocumented; the explicit `unref()` fallback is worse because it also stops the app's own
 * `'message'` listeners from keeping the process alive.
 */
interface CountedChannel {
  ref(): void;
  unref(): void;
  refCounted?: () => void;
  unrefCounted?: () => void;
}

function channel(): CountedChannel | undefined {
  return (process as { channel?: CountedChannel }).channel;
}

export function channelRelease(): void {
  const c = channel();
  if (typeof c?.unrefCounted === 'function') c.unrefCounted();
  else c?.unref();
}

export function channelHold(): void {
  const c = channel();
  if (typeof c?.refCounted === 'function') c.refCounted();
  else c?.ref();
}
