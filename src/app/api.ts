/**
 * The public types of the app library: the `nodesockd` object and its events, the request
 * handlers, the reply shape (docs/worker-library.md#the-nodesockd-object). runtime.ts implements them.
 */
import type { EventEmitter } from 'node:events';
import type { WorkerResult } from '../ipc/protocol.js';

/** Events emitted by {@link nodesockd}, with their listener arguments. */
export interface NodesockdEvents {
  /**
   * The daemon asked this worker to stop (or, standalone, the app called
   * {@link Nodesockd.reportBroken}). Emitted at most once. {@link serve} drains on it; apps that
   * do not use `serve()` close their server and exit here.
   */
  shutdown: [];
  /** The worker left suspension; requests held until now are being released. Emitted at most once. */
  resume: [];
  /**
   * An app message sent with `nodesockd send-msg <name> [json]`: its name and its data (any JSON
   * value; `undefined` when none was given).
   */
  message: [name: string, data: unknown];
  /**
   * Any other IPC message the library does not handle (not `'shutdown'`, `'resume'`, an app
   * message or an app request), passed through unchanged. The daemon itself sends no such
   * message; this is for a parent process other than the daemon, e.g. a test harness.
   */
  ipc: [message: unknown];
}

/**
 * Answers `nodesockd send-req <name> [json]`: the value returned (or the promise's value) is the
 * reply and must be JSON-serialisable; a thrown error or a rejection becomes an error reply
 * carrying its message.
 */
export type AppRequestHandler = (name: string, data: unknown) => unknown;

/**
 * The original v2 form, `setRequestHandler(name, handler)`: answers the requests of one name.
 * It may return a value, a promise, or an async iterable (an `async function*`), whose items go
 * back as separate replies (docs/worker-library.md#requests).
 */
export type NamedRequestHandler = (data: unknown) => unknown;

/** One reply to {@link Nodesockd.sendAppRequest}: a worker, and its answer or its error. */
export type AppRequestReply = WorkerResult;

/** Express/Connect middleware, typed structurally (no framework types needed). */
export type SuspendMiddleware = (req: unknown, res: unknown, next: (err?: unknown) => void) => void;

/**
 * The app's handle on the daemon. One per process, shared by every copy of the library that the
 * process loads (see {@link nodesockd}).
 */
export interface Nodesockd extends EventEmitter<NodesockdEvents> {
  /** `true` when started by the nodesockd daemon (an IPC channel and a socket path are present). */
  readonly managed: boolean;
  /** The unique socket this worker must listen on; `undefined` standalone. */
  readonly socketPath: string | undefined;
  /** The worker's id as shown by `nodesockd status`; `undefined` standalone. */
  readonly id: string | undefined;
  /** The slot this worker was started for; `undefined` standalone or when unknown. */
  readonly index: number | undefined;
  /** `true` from a suspended start until the daemon sends `'resume'`. Always `false` standalone. */
  readonly suspended: boolean;
  /**
   * Settles when the worker is no longer suspended: already resolved when it was never suspended
   * or runs standalone. While something waits on it, the IPC channel keeps the process alive, so
   * `await nodesockd.resumed` before creating any server does not let the process exit early.
   */
  readonly resumed: Promise<void>;
  /** The id in a short form, as in the process title; the same as {@link id}. */
  readonly shortId: string | undefined;
  /** Express/Connect middleware that holds each request until resume (as `suspend.express`). */
  readonly suspendMiddleware: SuspendMiddleware;
  /**
   * Tell the daemon this worker is ready (listening). Sent once per process; no-op standalone.
   * Resolves once the message is written (or dropped because the daemon is gone).
   */
  reportOnline(): Promise<void>;
  /**
   * Tell the daemon this worker cannot serve correctly any more, so it gets replaced.
   * Standalone there is nobody to replace it: the `'shutdown'` event is emitted instead.
   */
  reportBroken(reason?: string): Promise<void>;
  /** v1: whether the worker is suspended (the same as {@link suspended}). */
  isSuspended(): boolean;
  /** v1: the worker's slot index (v1 called it the worker id); `undefined` standalone. */
  getWorkerId(): number | undefined;
  /**
   * v1: ask the daemon for a zero-downtime restart of every worker (the same as the v1 string
   * `process.send('restart')`). One restart runs however many workers ask at once.
   */
  restart(): Promise<void>;
  /**
   * Send an app message to other workers, as `nodesockd send-msg` does: `workers` is a selector
   * (default `all`) where `self` is this worker, e.g. `'!self'`. Resolves with the workers it
   * reached; rejects on a bad selector. Standalone it throws.
   */
  sendAppMessage(message: string, data?: unknown, workers?: string): Promise<AppRequestReply[]>;
  /**
   * Send an app request to other workers: one reply per worker (per item when a worker's
   * handler streams), in order, each with the worker's pid and id. Standalone it throws.
   */
  sendAppRequest(request: string, data?: unknown, workers?: string): AsyncIterableIterator<AppRequestReply>;
  /** Tell the daemon how many requests are in flight (used while draining). No-op standalone. */
  reportInflight(count: number): void;
  /**
   * Set the handler that answers `nodesockd send-req` (one per process; a later call replaces it,
   * `null` removes it). Without one, requests get the error reply `'no request handler'`. Standalone
   * nothing ever calls it.
   */
  setRequestHandler(handler: AppRequestHandler | null): void;
  /**
   * The original v2 form: the handler of the requests named `name` (a later call replaces it,
   * `null` removes it). A named handler answers before the one-argument handler.
   */
  setRequestHandler(name: string, handler: NamedRequestHandler | null): void;
  /** @internal Stop as if the daemon had sent 'shutdown' (used for SIGTERM by serve()). */
  requestShutdown(): void;
}
