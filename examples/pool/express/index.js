// Express over the pool: `npm i express`, then `node examples/pool/express/index.js`.
const { startFront, stopOnSignal } = require('../front.js');

stopOnSignal(startFront(require.resolve('./http_server.js')));
