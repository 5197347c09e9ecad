import net from 'node:net';
import { readJsonFrames } from '../ipc/framing.js';

const RETRY_FIRST_MS = 100;
const RETRY_MAX_MS = 2_000;

/**
 * The worker's way back to a daemon after the one that spawned it is gone (a crash, an
 * upgrade; SPEC §4.8, §4.9): it connects to the control socket, introduces itself, and from
 * then on the connection carries what the IPC channel carried. It retries until a daemon
 * answers, without keeping the process alive.
 */
export class DaemonLink {
  #socket: net.Socket | null = null;
  #ready = false;
  #closed = false;
  #delay = RETRY_FIRST_MS;

  constructor(
    readonly ipcFile: string,
    readonly workerId: string,
    readonly onMessage: (message: unknown) => void,
  ) {}

  get connected(): boolean {
    return this.#ready && this.#socket !== null && !this.#socket.destroyed;
  }

  start(): void {
    this.#connect();
  }

  close(): void {
    this.#closed = true;
    this.#socket?.destroy();
  }

  send(message: unknown, done?: () => void): boolean {
    if (!this.connected) return false;
    this.#socket!.write(`${JSON.stringify(message)}\n`, () => done?.());
    return true;
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
    this.#socket = socket;
    socket.unref();
    socket.on('connect', () => {
      socket.write(
        `${JSON.stringify({ id: 1, type: 'worker-hello', data: { workerId: this.workerId, pid: process.pid } })}\n`,
      );
    });
    readJsonFrames(socket, (message) => {
      if (this.#ready) {
        this.onMessage(message);
        return;
      }
      // The reply to the introduction; an unknown worker is told so and retries later.
      if ((message as { ok?: unknown }).ok === true) {
        this.#ready = true;
        this.#delay = RETRY_FIRST_MS;
      } else {
        socket.destroy();
      }
    });
    socket.on('error', () => socket.destroy());
    socket.on('close', () => {
      if (this.#socket === socket) this.#retry();
    });
  }
}
