/**
 * The worker's view of the daemon: environment, IPC messages, suspension, lifecycle reports and
 * the process-wide singleton. Its public types are in api.ts, the channel in channel.ts, app
 * messages and requests in app-messaging.ts.
 *
 * Everything here is inert when the process was not started by the daemon ("standalone"), so
 * the same app runs unchanged with `node app.js` on a developer's machine.
 */
import { EventEmitter } from 'node:events';
import { titleName } from '../config/name.js';
import { replyItems } from '../ipc/reply-items.js';
import {
  type BrokenMessage,
  ENV,
  type InflightMessage,
  isAppMessage,
  isAppRequestLike,
  MSG_APP_SEND_RESULT,
  MSG_ONLINE,
  MSG_RESTART,
  MSG_RESUME,
  MSG_SHUTDOWN,
} from '../ipc/worker-protocol.js';
import type {
  AppRequestHandler,
  AppRequestReply,
  NamedRequestHandler,
  Nodesockd,
  NodesockdEvents,
  SuspendMiddleware,
} from './api.js';
import { AppMessaging } from './app-messaging.js';
import { channelHold, channelRelease, sendToDaemon, sent } from './channel.js';
import type { DaemonLink } from './daemon-link.js';
import { reportLoopDelay } from './loop-delay-reporter.js';
import { bridgeToNextDaemon } from './reconnect.js';

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
  /** Sends to other workers, and answers to their requests. */
  readonly #messaging = new AppMessaging();
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
      process.once('disconnect', () => this.#messaging.daemonGone());
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
    return this.#send('message', message, data, workers);
  }

  async *sendAppRequest(
    request: string,
    data?: unknown,
    workers?: string,
  ): AsyncIterableIterator<AppRequestReply> {
    yield* replyItems(await this.#send('request', request, data, workers));
  }

  #send(
    kind: 'message' | 'request',
    name: string,
    data: unknown,
    workers: string | undefined,
  ): Promise<AppRequestReply[]> {
    if (!this.managed) {
      throw new Error(`nodesockd: cannot send an app ${kind} when the worker runs standalone`);
    }
    return this.#messaging.send(kind, name, data, workers);
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
    this.#messaging.setHandler(nameOrHandler, named);
  }

  readonly #onMessage = (message: unknown): void => {
    if (message === MSG_SHUTDOWN) this.#shutdown();
    else if (message === MSG_RESUME) this.#resume();
    else if (isAppMessage(message)) this.emit('message', message.name, message.data);
    else if (isAppRequestLike(message)) void this.#messaging.answer(message.id, message.name, message.data);
    else if (
      typeof message === 'object' &&
      message !== null &&
      (message as { type?: unknown }).type === MSG_APP_SEND_RESULT
    )
      this.#messaging.onSendResult(message);
    else this.emit('ipc', message);
  };

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
