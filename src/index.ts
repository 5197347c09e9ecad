/**
 * The app-side library of nodesockd (docs/worker-library.md#the-library): `import { serve, suspend, nodesockd } from 'nodesockd'`
 * or `require('nodesockd')`. Importing it has no effect beyond listening for the daemon's
 * messages when started by the daemon; standalone, every call is a harmless no-op.
 *
 * @packageDocumentation
 */
import { nodesockd } from './app/runtime.js';

export type { AppRequestHandler, Nodesockd, NodesockdEvents } from './app/runtime.js';
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
export * from './pool/index.js';

export default nodesockd;
