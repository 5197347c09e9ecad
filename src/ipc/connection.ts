import type net from 'node:net';
import { errorMessage } from '../error-message.js';
import {
  encodeFrame,
  escapeControlChars,
  FrameTooLargeError,
  LineFramer,
  MAX_FRAME_BYTES,
} from './framing.js';

/** What the owner of a connection is told about what the peer sends. */
export interface FrameHandlers {
  /** One decoded JSON frame. */
  frame(value: unknown): void;
  /** A frame that is not JSON, with a one-line reason. Default: the frame is dropped. */
  invalid?(reason: string): void;
  /**
   * The peer sent a frame over the limit. Its end cannot be found, so nothing more is read:
   * after this handler the connection is ended (default: destroyed at once).
   */
  overflow?(error: FrameTooLargeError): void;
}

/**
 * A socket carrying newline-delimited JSON: every end of the control socket (the daemon's
 * server, the CLI's client, a worker's link to a new daemon and the daemon's side of that link)
 * speaks through one. Frames are limited in UTF-8 bytes; a frame that is not JSON is reported,
 * never thrown; socket errors end the connection; a message for a peer that is gone is dropped.
 */
export class FrameConnection {
  private readonly framer: LineFramer;
  private handlers: FrameHandlers | null = null;
  private reading = true;
  private failure: NodeJS.ErrnoException | null = null;

  constructor(
    private readonly socket: net.Socket,
    maxBytes = MAX_FRAME_BYTES,
  ) {
    this.framer = new LineFramer(maxBytes);
    socket.on('data', (chunk: Buffer) => this.onData(chunk));
    // A socket error (refused, reset) is an ordinary end: 'close' follows and reports it.
    socket.on('error', (err) => {
      this.failure ??= err;
      socket.destroy();
    });
  }

  /**
   * Sets who receives the frames from now on, frames still queued in the current chunk
   * included: a first frame may hand the connection over to a new owner (see ipc/server.ts).
   * Frames that arrive before any handler is set are dropped, so set one in the tick that
   * creates the connection.
   */
  setHandlers(handlers: FrameHandlers): void {
    this.handlers = handlers;
  }

  /** Whether a message sent now can still reach the peer. */
  get writable(): boolean {
    return !this.socket.destroyed && this.socket.writable;
  }

  /**
   * Sends one message (any JSON value). Returns false, sending nothing, when the peer can no
   * longer be reached: a peer that gave up costs nothing but its messages. `done` runs once
   * the message is written (or failed to be).
   */
  send(message: unknown, done?: (err: Error | null) => void): boolean {
    if (!this.writable) return false;
    this.socket.write(encodeFrame(message), (err) => done?.(err ?? null));
    return true;
  }

  /** Sends what is queued, then closes; nothing the peer sends after this is read. */
  end(): void {
    this.reading = false;
    this.socket.end();
  }

  /** Closes at once. */
  destroy(): void {
    this.reading = false;
    this.socket.destroy();
  }

  get destroyed(): boolean {
    return this.socket.destroyed;
  }

  /** Runs once the connection is closed, by either side; `err` is the socket error that closed it. */
  onClose(listener: (err: NodeJS.ErrnoException | null) => void): void {
    this.socket.once('close', () => listener(this.failure));
  }

  private onData(chunk: Buffer): void {
    if (!this.reading) return;
    let frames: string[];
    try {
      frames = this.framer.push(chunk);
    } catch (err) {
      if (!(err instanceof FrameTooLargeError)) throw err;
      this.reading = false;
      if (this.handlers?.overflow) {
        this.handlers.overflow(err);
        this.end();
      } else {
        this.destroy();
      }
      return;
    }
    for (const frame of frames) {
      if (!this.reading) return;
      let value: unknown;
      try {
        value = JSON.parse(frame);
      } catch (err) {
        // V8 quotes the frame in its message: keep the reason on one line.
        this.handlers?.invalid?.(escapeControlChars(`invalid JSON: ${errorMessage(err)}`));
        continue;
      }
      this.handlers?.frame(value);
    }
  }
}
