/**
 * The worker's view of the daemon: environment, IPC messages and the process-wide singleton.
 *
 * Everything here is inert when the process was not started by the daemon ("standalone"), so
 * the same app runs unchanged with `node app.js` on a developer's machine.
 */
import { EventEmitter } from 'node:events';
import { titleName } from '../config/name.js';
import { errorMessage } from '../error-message.js';
import type { WorkerResult } from '../ipc/protocol.js';
import { replyItems } from '../ipc/reply-items.js';
import {
  type AppReply,
  type AppSend,
  type BrokenMessage,
  ENV,
  type InflightMessage,
  isAppMessage,
  isAppRequestLike,
  MSG_APP_REPLY,
  MSG_APP_SEND,
  MSG_APP_SEND_RESULT,
  MSG_ONLINE,
  MSG_RESTART,
  MSG_RESUME,
  MSG_SHUTDOWN,
  type WorkerToDaemon,
} from '../ipc/worker-protocol.js';
import type { DaemonLink } from './daemon-link.js';
import { reportLoopDelay } from './loop-delay-reporter.js';
import { bridgeToNextDaemon } from './reconnect.js';

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

/** What every copy of the library loaded in this process shares. */
export interface SharedState {
  readonly version: 1;
  readonly worker: Nodesockd;
  /** Set once a server has been handed to `serve()`: a worker serves exactly one socket. */
  served: boolean;
  /** Set when `'shutdown'` was emitted, so a `serve()` that is still starting drains at once. */
  shutdownRequested: boolean;
  /** The control-socket link used once the spawning daemon is gone (see reconnect.ts). */
  link?: DaemonLink;
  /** Servers guarded by `serve()`, which the preload's drain leaves alone. */
  guarded?: WeakSet<object>;
}

const SHARED_KEY = Symbol.for('nodesockd.worker');

/**
 * What the daemon's preload does in this worker (`preload` in the config): a comma-separated
 * list in NODESOCKD_PRELOAD; every feature when unset (the library without the daemon's preload).
 */
export function preloadFeature(feature: 'drain' | 'reconnect'): boolean {
  const list = process.env[ENV.preload];
  return list === undefined || list.split(',').includes(feature);
}

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

/**
 * What the app threw, as the text of an error reply: never empty, and never throwing itself
 * (an app may throw an object whose `toString()` throws).
 */
function thrownText(err: unknown): string {
  try {
    return errorMessage(err) || (err instanceof Error ? err.name : '') || 'request handler failed';
  } catch {
    return 'request handler failed';
  }
}

/**
 * The handler's value as reply data, or an error when JSON cannot carry it (the IPC channel
 * serialises with JSON, where a BigInt or a cycle throws and a function silently vanishes).
 * The data sent is what `JSON.parse(JSON.stringify(value))` gives, so `toJSON()` runs once, here.
 */
function toReplyData(value: unknown): { ok: true; data?: unknown } | { ok: false; error: string } {
  if (value === undefined) return { ok: true };
  let json: string | undefined;
  try {
    json = JSON.stringify(value);
  } catch (err) {
    return { ok: false, error: `the reply is not JSON-serialisable: ${thrownText(err)}` };
  }
  if (json === undefined) {
    return { ok: false, error: `the reply is not JSON-serialisable: a ${typeof value}` };
  }
  return { ok: true, data: JSON.parse(json) as unknown };
}

function isAsyncIterable(value: unknown): value is AsyncIterable<unknown> {
  return (
    typeof value === 'object' &&
    value !== null &&
    typeof (value as { [Symbol.asyncIterator]?: unknown })[Symbol.asyncIterator] === 'function'
  );
}

/** A send to the daemon as a promise: resolves once written or dropped, never rejects. */
function sent(message: WorkerToDaemon): Promise<void> {
  return new Promise((resolve) => sendToDaemon(message, resolve));
}

function nonEmpty(value: string | undefined): string | undefined {
  return value === undefined || value === '' ? undefined : value;
}

function parseIndex(value: string | undefined): number | undefined {
  if (value === undefined || !/^\d+$/.test(value)) return undefined;
  return Number(value);
}

/** The daemon sets `'1'`; the original tool set `'true'`. Both mean suspended. */
function parseSuspended(value: string | undefined): boolean {
  return value !== undefined && value !== '' && value !== '0' && value.toLowerCase() !== 'false';
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

function channelRelease(): void {
  const c = channel();
  if (typeof c?.unrefCounted === 'function') c.unrefCounted();
  else c?.unref();
}

function channelHold(): void {
  const c = channel();
  if (typeof c?.refCounted === 'function') c.refCounted();
  else c?.ref();
}

class WorkerRuntime extends EventEmitter<NodesockdEvents> implements Nodesockd {
  readonly managed: boolean;
  readonly socketPath: string | undefined;
  readonly id: string | undefined;
  readonly index: number | undefined;
  #suspended: boolean;
  readonly #resumed: Promise<void>;
  #resolveResumed: () => void = () => {};
  #holdingChannel = false;
  #onlineSent = false;
  #requestHandler: AppRequestHandler | null = null;
  readonly #namedHandlers = new Map<string, NamedRequestHandler>();
  /** sendAppMessage/sendAppRequest waiting for the daemon's answer, by id. */
  readonly #sends = new Map<number, { resolve: (r: unknown[]) => void; reject: (e: Error) => void }>();
  #nextSendId = 1;
  readonly #shared: () => SharedState;

  constructor(shared: () => SharedState) {
    super();
    this.#shared = shared;
    const socketPath = nonEmpty(process.env[ENV.socketPath]);
    this.managed = typeof process.send === 'function' && socketPath !== undefined;
    this.socketPath = this.managed ? socketPath : undefined;
    this.id = this.managed ? nonEmpty(process.env[ENV.workerId]) : undefined;
    this.index = this.managed ? parseIndex(process.env[ENV.workerIndex]) : undefined;
    this.#suspended = this.managed && parseSuspended(process.env[ENV.suspended]);
    this.#resumed = this.#suspended
      ? new Promise<void>((resolve) => {
          this.#resolveResumed = resolve;
        })
      : Promise.resolve();
    if (this.managed) {
      process.on('message', this.#onMessage);
      channelRelease();
      const ipcFile = nonEmpty(process.env[ENV.ipcFile]);
      // The daemon went away without asking this worker to stop: keep serving and find the
      // next daemon, which adopts this worker.
      process.once('disconnect', () => {
        if (ipcFile === undefined || this.id === undefined || this.#shared().shutdownRequested) return;
        if (!preloadFeature('reconnect')) return;
        this.#shared().link = bridgeToNextDaemon(ipcFile, this.id);
      });
      // A 'disconnect' listener, like a 'message' one, refs the channel: take that back too.
      channelRelease();
      process.once('disconnect', () => {
        for (const send of this.#sends.values()) send.reject(new Error('nodesockd: the daemon is gone'));
        this.#sends.clear();
      });
      channelRelease();
      const name = titleName(process.env[ENV.appName] ?? 'app');
      process.title = `${name} worker '${this.id ?? '?'}'`;
      reportLoopDelay((message) => sendToDaemon(message));
    }
  }

  get shortId(): string | undefined {
    return this.id;
  }

  readonly suspendMiddleware: SuspendMiddleware = (_req, _res, next) => {
    // The hot path: an unsuspended worker pays one property read per request, not a microtask.
    if (!this.#suspended) {
      next();
      return;
    }
    this.resumed.then(() => next(), next);
  };

  isSuspended(): boolean {
    return this.#suspended;
  }

  getWorkerId(): number | undefined {
    return this.index;
  }

  restart(): Promise<void> {
    if (!this.managed) return Promise.resolve();
    return sent(MSG_RESTART);
  }

  sendAppMessage(message: string, data?: unknown, workers?: string): Promise<AppRequestReply[]> {
    return this.#send('message', message, data, workers) as Promise<AppRequestReply[]>;
  }

  async *sendAppRequest(
    request: string,
    data?: unknown,
    workers?: string,
  ): AsyncIterableIterator<AppRequestReply> {
    const results = (await this.#send('request', request, data, workers)) as AppRequestReply[];
    yield* replyItems(results);
  }

  #send(kind: AppSend['kind'], name: string, data: unknown, workers: string | undefined): Promise<unknown[]> {
    if (!this.managed) {
      throw new Error(`nodesockd: cannot send an app ${kind} when the worker runs standalone`);
    }
    if (typeof name !== 'string' || name === '') {
      throw new TypeError(`nodesockd: the app ${kind} name must be a non-empty string`);
    }
    const id = this.#nextSendId++;
    const message: AppSend = { type: MSG_APP_SEND, id, kind, name };
    if (data !== undefined) message.data = data;
    if (workers !== undefined) message.workers = workers;
    return new Promise((resolve, reject) => {
      this.#sends.set(id, { resolve, reject });
      // While waiting for the answer the channel must keep the process alive.
      channelHold();
      sendToDaemon(message);
    }).finally(channelRelease) as Promise<unknown[]>;
  }

  #onSendResult(message: { id?: unknown; ok?: unknown; results?: unknown; error?: unknown }): void {
    if (typeof message.id !== 'number') return;
    const send = this.#sends.get(message.id);
    if (send === undefined) return;
    this.#sends.delete(message.id);
    if (message.ok === true && Array.isArray(message.results)) send.resolve(message.results);
    else send.reject(new Error(`nodesockd: ${String(message.error ?? 'malformed answer from the daemon')}`));
  }

  get suspended(): boolean {
    return this.#suspended;
  }

  get resumed(): Promise<void> {
    if (this.#suspended && !this.#holdingChannel) {
      this.#holdingChannel = true;
      channelHold();
    }
    return this.#resumed;
  }

  reportOnline(): Promise<void> {
    if (!this.managed || this.#onlineSent) return Promise.resolve();
    this.#onlineSent = true;
    return sent(MSG_ONLINE);
  }

  reportBroken(reason?: string): Promise<void> {
    if (this.managed) {
      const message: BrokenMessage = {
        type: 'nodesockd:broken',
        reason: String(reason ?? 'reported broken'),
      };
      return sent(message);
    }
    // Deferred so that a caller inside a request handler finishes before the drain starts.
    process.nextTick(() => this.#shutdown());
    return Promise.resolve();
  }

  reportInflight(count: number): void {
    if (!Number.isInteger(count) || count < 0) {
      throw new RangeError(`nodesockd: in-flight count must be a non-negative integer, got ${count}`);
    }
    if (!this.managed) return;
    const message: InflightMessage = { type: 'nodesockd:inflight', count };
    sendToDaemon(message);
  }

  setRequestHandler(handler: AppRequestHandler | null): void;
  setRequestHandler(name: string, handler: NamedRequestHandler | null): void;
  setRequestHandler(
    nameOrHandler: string | AppRequestHandler | null,
    named?: NamedRequestHandler | null,
  ): void {
    if (typeof nameOrHandler === 'string') {
      if (nameOrHandler === '') throw new TypeError('nodesockd: setRequestHandler(name, fn): name is empty');
      if (named === null) this.#namedHandlers.delete(nameOrHandler);
      else if (typeof named === 'function') this.#namedHandlers.set(nameOrHandler, named);
      else throw new TypeError('nodesockd: setRequestHandler(name, fn) takes a function or null as fn');
      return;
    }
    if (nameOrHandler !== null && typeof nameOrHandler !== 'function') {
      throw new TypeError(
        'nodesockd: setRequestHandler() takes a function or null (or a name and a function)',
      );
    }
    this.#requestHandler = nameOrHandler;
  }

  readonly #onMessage = (message: unknown): void => {
    if (message === MSG_SHUTDOWN) this.#shutdown();
    else if (message === MSG_RESUME) this.#resume();
    else if (isAppMessage(message)) this.emit('message', message.name, message.data);
    else if (isAppRequestLike(message)) void this.#answer(message.id, message.name, message.data);
    else if (
      typeof message === 'object' &&
      message !== null &&
      (message as { type?: unknown }).type === MSG_APP_SEND_RESULT
    )
      this.#onSendResult(message);
    else this.emit('ipc', message);
  };

  /**
   * Runs the request handler and sends its reply: one frame, or for an async iterable one frame
   * per item and an end frame (or an error frame that ends it). Nothing here may throw.
   */
  async #answer(id: unknown, name: unknown, data: unknown): Promise<void> {
    // Without a usable id the reply could not be matched: the daemon times the request out.
    if (typeof id !== 'number' || !Number.isSafeInteger(id) || id < 1) return;
    const fail = (error: string): AppReply => ({ type: MSG_APP_REPLY, id, ok: false, error });
    if (typeof name !== 'string') {
      sendToDaemon(fail('malformed request'));
      return;
    }
    const named = this.#namedHandlers.get(name);
    const handler = this.#requestHandler;
    if (named === undefined && handler === null) {
      sendToDaemon(fail('no request handler'));
      return;
    }
    let value: unknown;
    try {
      value = named !== undefined ? await named(data) : await handler?.(name, data);
    } catch (err) {
      sendToDaemon(fail(thrownText(err)));
      return;
    }
    if (!isAsyncIterable(value)) {
      sendToDaemon({ type: MSG_APP_REPLY, id, ...toReplyData(value) });
      return;
    }
    try {
      for await (const item of value) {
        const one = toReplyData(item);
        if (!one.ok) {
          sendToDaemon(fail(one.error));
          return;
        }
        await sent({ type: MSG_APP_REPLY, id, ok: true, data: one.data ?? null, stream: 'item' });
      }
      sendToDaemon({ type: MSG_APP_REPLY, id, ok: true, stream: 'end' });
    } catch (err) {
      sendToDaemon(fail(thrownText(err)));
    }
  }

  /**
   * Stop as if the daemon had sent 'shutdown' (for SIGTERM from a daemon that adopted this
   * worker without a channel to it): 'shutdown' listeners run, serve() drains. Internal.
   */
  requestShutdown(): void {
    this.#shutdown();
  }

  #shutdown(): void {
    const shared = this.#shared();
    if (shared.shutdownRequested) return;
    shared.shutdownRequested = true;
    this.emit('shutdown');
  }

  #resume(): void {
    if (!this.#suspended) return;
    this.#suspended = false;
    this.#resolveResumed();
    if (this.#holdingChannel) {
      this.#holdingChannel = false;
      channelRelease();
    }
    this.emit('resume');
  }
}

function createShared(): SharedState {
  const shared: SharedState = {
    version: 1,
    worker: undefined as unknown as Nodesockd,
    served: false,
    shutdownRequested: false,
  };
  (shared as { worker: Nodesockd }).worker = new WorkerRuntime(() => shared);
  return shared;
}

/**
 * The process-wide state. An app that both `require`s and `import`s the package gets two copies
 * of this module (CJS and ESM builds); they must agree on one worker, one IPC listener and one
 * `'online'`, so the first copy to load publishes its state on `globalThis` and later copies
 * adopt it.
 */
export const shared: SharedState = (() => {
  const g = globalThis as { [SHARED_KEY]?: SharedState };
  const existing = g[SHARED_KEY];
  // A copy of another library version still shares: `version` exists for the day the shape changes.
  if (existing !== undefined) return existing;
  const created = createShared();
  Object.defineProperty(g, SHARED_KEY, { value: created, configurable: false, enumerable: false });
  return created;
})();

/**
 * The worker handle: environment, readiness, suspension and shutdown (docs/worker-library.md#the-nodesockd-object).
 *
 * @example
 * ```ts
 * import { nodesockd } from 'nodesockd';
 * nodesockd.on('shutdown', () => server.close(() => process.exit(0)));
 * server.listen(nodesockd.socketPath ?? 3000, () => nodesockd.reportOnline());
 * ```
 */
export const nodesockd: Nodesockd = shared.worker;

/** The servers a guard already handles (shared by every copy of the library in the process). */
export function guardedServers(): WeakSet<object> {
  shared.guarded ??= new WeakSet();
  return shared.guarded;
}
