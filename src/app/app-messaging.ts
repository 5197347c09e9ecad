/**
 * App messaging in the worker (docs/worker-library.md#messages-and-requests): the app's sends
 * and requests to other workers, each waiting for the daemon's answer by id
 * (net/correlator.ts), and the answers to requests from the daemon, by the app's handlers.
 */

import { errorMessage } from '../error-message.js';
import type { WorkerResult } from '../ipc/protocol.js';
import { type AppReply, type AppSend, MSG_APP_REPLY, MSG_APP_SEND } from '../ipc/worker-protocol.js';
import { Correlator } from '../net/correlator.js';
import type { AppRequestHandler, NamedRequestHandler } from './api.js';
import { channelHold, channelRelease, sendToDaemon, sent } from './channel.js';

type SendOutcome = { ok: true; results: WorkerResult[] } | { ok: false; error: string };

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

export class AppMessaging {
  #requestHandler: AppRequestHandler | null = null;
  readonly #namedHandlers = new Map<string, NamedRequestHandler>();
  /** Sends waiting for the daemon's answer, by id. */
  readonly #sends = new Correlator<SendOutcome>();

  /** Sends an app message or request through the daemon; resolves with every worker's result. */
  send(
    kind: AppSend['kind'],
    name: string,
    data: unknown,
    workers: string | undefined,
  ): Promise<WorkerResult[]> {
    if (typeof name !== 'string' || name === '') {
      throw new TypeError(`nodesockd: the app ${kind} name must be a non-empty string`);
    }
    const { id, outcome } = this.#sends.open(undefined);
    const message: AppSend = { type: MSG_APP_SEND, id, kind, name };
    if (data !== undefined) message.data = data;
    if (workers !== undefined) message.workers = workers;
    // While waiting for the answer the channel must keep the process alive.
    channelHold();
    sendToDaemon(message);
    return outcome.finally(channelRelease).then((answer) => {
      if (!answer.ok) throw new Error(`nodesockd: ${answer.error}`);
      return answer.results;
    });
  }

  /** The daemon's answer to a send. */
  onSendResult(message: { id?: unknown; ok?: unknown; results?: unknown; error?: unknown }): void {
    if (typeof message.id !== 'number') return;
    this.#sends.settle(
      message.id,
      message.ok === true && Array.isArray(message.results)
        ? { ok: true, results: message.results as WorkerResult[] }
        : { ok: false, error: String(message.error ?? 'malformed answer from the daemon') },
    );
  }

  /** The daemon is gone: the sends still waiting fail. */
  daemonGone(): void {
    this.#sends.settleWhere(() => true, { ok: false, error: 'the daemon is gone' });
  }

  /** `setRequestHandler` of the nodesockd object (api.ts), its arguments checked. */
  setHandler(nameOrHandler: string | AppRequestHandler | null, named?: NamedRequestHandler | null): void {
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

  /**
   * Runs the request handler and sends its reply: one frame, or for an async iterable one frame
   * per item and an end frame (or an error frame that ends it). Nothing here may throw.
   */
  async answer(id: unknown, name: unknown, data: unknown): Promise<void> {
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
}
