import type { EventEmitter } from 'node:events';

/**
 * A worker process as its `ManagedWorker` sees it: a ChildProcess the daemon spawned, an
 * `AdoptedProcess` an earlier daemon left, or a fake in the policy tests.
 *
 * Events: 'message' (value), 'exit' (code, signal), 'error' (Error; a failed spawn), 'spawn',
 * and 'connect' when a channel that was missing appears (an adopted worker reconnecting).
 */
export interface WorkerProcess extends EventEmitter {
  readonly pid?: number | undefined;
  readonly connected: boolean;
  send(message: unknown, callback?: (err: Error | null) => void): boolean;
  kill(signal: NodeJS.Signals): boolean;
  disconnect?(): void;
  unref?(): void;
}

/** Signals a whole process group (the worker and the helpers it started); false if none is left. */
export function signalGroup(pgid: number, signal: NodeJS.Signals | 0): boolean {
  try {
    process.kill(-pgid, signal);
    return true;
  } catch {
    return false;
  }
}
