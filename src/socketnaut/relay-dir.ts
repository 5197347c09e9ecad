/**
 * Where the agents' relay sockets live: one private directory per front process, made by
 * `mkdtemp` (mode 0700, whatever the umask), so only the process's own user can reach a relay
 * socket and claim a client address in its header. The directory goes when the process exits,
 * also on a SIGTERM or SIGINT (Ctrl-C) that nothing else in the process handles.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

/** Set in a process worker's environment: the front's relay directory. */
export const POOL_RELAY_DIR_ENV = 'NODESOCKD_POOL_RELAY_DIR';

const SIGNALS = ['SIGTERM', 'SIGINT'] as const;

let current: string | null = null;

function remove(): void {
  if (current === null) return;
  try {
    fs.rmSync(current, { recursive: true, force: true });
  } catch {
    // Best effort at exit: nothing else can be done about it here.
  }
  current = null;
}

/**
 * With no other listener, the signal's default action (the process ends by it) after the
 * directory is gone; with another (the app's own shutdown), that one decides, and the exit
 * removes the directory.
 */
function onSignal(signal: NodeJS.Signals): void {
  if (process.listenerCount(signal) > 1) return;
  remove();
  for (const s of SIGNALS) process.removeListener(s, onSignal);
  process.kill(process.pid, signal);
}

/** This process's relay directory, made on first use. */
export function relayDir(): string {
  if (current !== null) return current;
  current = fs.mkdtempSync(path.join(os.tmpdir(), 'nsd-pool-'));
  process.once('exit', remove);
  // As PID 1 (a container without an init) the kernel ignores these signals' default action:
  // the process would go on serving without its relay sockets.
  if (process.pid !== 1)
    for (const s of SIGNALS) if (!process.listeners(s).includes(onSignal)) process.on(s, onSignal);
  return current;
}
