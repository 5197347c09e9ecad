/**
 * The app-side library of nodesockd (SPEC §5.2): `import { serve, suspend, nodesockd } from 'nodesockd'`
 * or `require('nodesockd')`. Importing it has no effect beyond listening for the daemon's
 * messages when started by the daemon; standalone, every call is a harmless no-op.
 *
 * @packageDocumentation
 */
import { nodesockd } from './worker/runtime.js';

export * from './pool/index.js';
export type { AppRequestHandler, Nodesockd, NodesockdEvents } from './worker/runtime.js';
export { nodesockd } from './worker/runtime.js';
export type { ServeInfo, ServeOptions } from './worker/serve.js';
export { serve } from './worker/serve.js';
export type {
  ExpressMiddleware,
  FastifyOnRequestHook,
  KoaMiddleware,
  SuspendFunction,
} from './worker/suspend.js';
export { suspend } from './worker/suspend.js';

export default nodesockd;
