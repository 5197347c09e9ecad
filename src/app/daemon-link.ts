import net from 'node:net';
import { FrameConnection } from '../ipc/connection.js';
import type { Reply, WorkerHello } from '../ipc/protocol.js';

const RETRY_FIRST_MS = 100;
const RETRY_MAX_MS = 2_000;

/** Whether the daemon's reply to the hello took this worker on. */
function isAccepted(reply: unknown): boolean {
  return typeof reply === 'object' && reply !== null && (reply as Partial<Reply>).ok === true;
}

/**
 * The worker's way back to a daemon after the one that spawned it is gone (a crash, an upgrade;
 * docs/lifecycle.md#when-the-daemon-dies): it connects to the control socket, introduces itself
 * in the first frame, and from then on the connection carries what the IPC channel carried. It
 * retries until a daemon answers, without keeping the process alive.
 */
export class DaemonLink {
  #connection: FrameConnection | null = null;
  #ready = false;
  #closed = false;
  #delay = RETRY_FIRST_MS;

  constructor(
    readonly ipcFile: string,
    readonly workerId: string,
    readonly onMessage: (message: unknown) => void,
  ) {}

  get connected(): boolean {
    return this.#ready && this.#connection !== null && !this.#connection.destroyed;
  }

  start(): void {
    this.#connect();
  }

  close(): void {
    this.#closed = true;
    this.#connection?.destroy();
  }

  send(message: unknown, done?: () => void): boolean {
    if (!this.connected) return false;
    return this.#connection?.send(message, () => done?.()) ?? false;
  }

  #retry(): void {
    if (this.#closed) return;
    const timer = setTimeout(() => this.#connect(), this.#delay);
    timer.unref();
    this.#delay = Math.min(RETRY_MAX_MS, this.#delay * 2);
  }

  #connect(): void {
    if (this.#closed) return;
    this.#ready = false;
    const socket = net.connect(this.ipcFile);
    socket.unref();
    const connection = new FrameConnection(socket);
    this.#connection = connection;
    const hello: WorkerHello = {
      id: 1,
      type: 'worker-hello',
      data: { workerId: this.workerId, pid: process.pid },
    };
    connection.send(hello);
    connection.setHandlers({
      frame: (message) => {
        if (this.#ready) {
          this.onMessage(message);
          return;
        }
        // The reply to the introduction; an unknown worker is told so and retries later.
        if (isAccepted(message)) {
          this.#ready = true;
          this.#delay = RETRY_FIRST_MS;
        } else {
          connection.destroy();
        }
      },
    });
    connection.onClose(() => {
      if (this.#connection === connection) this.#retry();
    });
  }
}
