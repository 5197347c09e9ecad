// Hello World: `node examples/pool/hello-world/index.js`, then `curl http://127.0.0.1:3000/`.
const { startFront, stopOnSignal } = require('../front.js');

stopOnSignal(startFront(require.resolve('./http_server.js')));
