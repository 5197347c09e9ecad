/**
 * The app-side library of nodesockd (docs/worker-library.md#the-library): `import { serve, suspend, nodesockd } from 'nodesockd'`
 * or `require('nodesockd')`. Importing it has no effect beyond listening for the daemon's
 * messages when started by the daemon; standalone, every call is a harmless no-op.
 *
 * @packageDocumentation
 */
import { nodesockd } from './app/runtime.js';

export type {
  AppRequestHandler,
  AppRequestReply,
  NamedRequestHandler,
  Nodesockd,
  Nodesockd as NodesockdWorker,
  NodesockdEvents,
  NodesockdEvents as NodesockdWorkerEvents,
  SuspendMiddleware,
} from './app/api.js';
export { nodesockd } from './app/runtime.js';
export type { ServeInfo, ServeOptions } from './app/serve.js';
export { serve } from './app/serve.js';
export type {
  ExpressMiddleware,
  FastifyOnRequestHook,
  KoaMiddleware,
  SuspendFunction,
} from './app/suspend.js';
export { suspend } from './app/suspend.js';
export * from './socketnaut/index.js';

/** v1: whether this worker is suspended (`nodesockd.isSuspended()`). */
export const isSuspended = (): boolean => nodesockd.isSuspended();
/** v1: this worker's slot index (`nodesockd.getWorkerId()`). */
export const getWorkerId = (): number | undefined => nodesockd.getWorkerId();
/** v1: ask for a zero-downtime restart of every worker (`nodesockd.restart()`). */
export const restart = (): Promise<void> => nodesockd.restart();

export default nodesockd;
