import { EventEmitter } from 'node:events';
import type { FrameConnection } from '../../ipc/connection';
import { isAlive } from '../proc';

/** How often an adopted worker (not our child: no 'exit' event) is checked for life. */
const LIVENESS_POLL_MS = 250;

/**
 * A worker started by an earlier daemon (docs/lifecycle.md#adoption), seen through the same surface as a
 * ChildProcess: `pid`, `connected`, `send()`, `kill()`, events 'message', 'exit', 'disconnect',
 * and 'connect' when the worker reconnects.
 * Its channel is the control-socket connection the worker's library opens after losing its
 * parent; a worker without the library has none and is driven by signals only.
 */
export class AdoptedProcess extends EventEmitter {
  private channel: FrameConnection | null = null;
  private readonly timer: NodeJS.Timeout;
  private exited = false;

  constructor(readonly pid: number) {
    super();
    this.timer = setInterval(() => {
      if (!isAlive(this.pid)) this.markExited();
    }, LIVENESS_POLL_MS);
  }

  get connected(): boolean {
    return this.channel?.writable === true;
  }

  /** Takes over a connection on which the worker introduced itself. */
  attach(connection: FrameConnection): void {
    this.channel?.destroy();
    this.channel = connection;
    // A garbled frame from a worker is dropped (no `invalid` handler), never fatal.
    connection.setHandlers({ frame: (message) => this.emit('message', message) });
    connection.onClose(() => {
      if (this.channel === connection) {
        this.channel = null;
        this.emit('disconnect');
      }
    });
    // After the control socket has written its reply to the worker's hello (in this same
    // tick): anything sent before it would be taken by the worker for that reply.
    setImmediate(() => {
      if (this.channel === connection) this.emit('connect');
    });
  }

  /** Stops watching the process and closes its channel, leaving the process alone. */
  release(): void {
    this.exited = true;
    clearInterval(this.timer);
    this.channel?.destroy();
  }

  send(message: unknown, callback?: (err: Error | null) => void): boolean {
    return this.channel?.send(message, callback) ?? false;
  }

  kill(signal: NodeJS.Signals): boolean {
    try {
      process.kill(this.pid, signal);
      return true;
    } catch {
      return false;
    }
  }

  private markExited(): void {
    if (this.exited) return;
    this.exited = true;
    clearInterval(this.timer);
    this.channel?.destroy();
    // The exit status of a process that is not our child cannot be known.
    this.emit('exit', null, null);
  }
}
