/**
 * Gating app code on `resume` (docs/lifecycle.md#suspension): a suspended worker is started while the database is
 * being migrated, so nothing that touches it may run until the daemon says so.
 */
import { shared } from './runtime.js';

/** An Express/Connect middleware, typed structurally so that no framework types are needed. */
export type ExpressMiddleware = (req: unknown, res: unknown, next: (err?: unknown) => void) => void;

/** A Koa middleware, typed structurally. */
export type KoaMiddleware = (ctx: unknown, next: () => Promise<unknown>) => Promise<void>;

/** A Fastify `onRequest` hook in callback style, typed structurally. */
export type FastifyOnRequestHook = (request: unknown, reply: unknown, done: (err?: Error) => void) => void;

/** {@link suspend} and its framework adapters. */
export interface SuspendFunction {
  /** Resolves when the worker is resumed; at once when it is not suspended or runs standalone. */
  (): Promise<void>;
  /**
   * Express/Connect middleware that holds each request until resume. Put it first:
   * `app.use(suspend.express)`.
   */
  readonly express: ExpressMiddleware;
  /** Koa middleware that holds each request until resume. Put it first: `app.use(suspend.koa)`. */
  readonly koa: KoaMiddleware;
  /**
   * Fastify hook that holds each request until resume:
   * `fastify.addHook('onRequest', suspend.fastify)`.
   */
  readonly fastify: FastifyOnRequestHook;
}

function waitForResume(): Promise<void> {
  return shared.worker.resumed;
}

// Requests are by far the hot path and almost never suspended: skip the promise when possible so
// that an unsuspended worker pays one property read per request, not a microtask.
const express: ExpressMiddleware = (req, res, next) => shared.worker.suspendMiddleware(req, res, next);

const koa: KoaMiddleware = async (_ctx, next) => {
  if (shared.worker.suspended) await waitForResume();
  await next();
};

// Callback style on purpose: Fastify treats a hook that returns a promise as async and would then
// ignore `done`, so this must return nothing.
const fastify: FastifyOnRequestHook = (_request, _reply, done) => {
  if (!shared.worker.suspended) {
    done();
    return;
  }
  waitForResume().then(
    () => done(),
    (err: unknown) => done(err instanceof Error ? err : new Error(String(err))),
  );
};

/**
 * Wait until the daemon resumes this worker.
 *
 * Await it before anything that must not run during a migration window (background jobs,
 * cache warm-up against the database), or use one of the request adapters.
 *
 * @example
 * ```ts
 * import { suspend } from 'nodesockd';
 * app.use(suspend.express);
 * await suspend();
 * startJobs();
 * ```
 */
export const suspend: SuspendFunction = Object.assign(() => waitForResume(), { express, koa, fastify });
