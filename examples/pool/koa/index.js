// Koa over the pool: `npm i koa`, then `node examples/pool/koa/index.js`.
const { startFront, stopOnSignal } = require('../front.js');

stopOnSignal(startFront(require.resolve('./http_server.js')));
