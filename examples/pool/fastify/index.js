// Fastify over the pool: `npm i fastify`, then `node examples/pool/fastify/index.js`.
const { startFront, stopOnSignal } = require('../front.js');

stopOnSignal(startFront(require.resolve('./http_server.js')));
