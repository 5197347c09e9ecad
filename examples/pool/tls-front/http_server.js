// Behind a TLS front: a plain http.Server; the bytes it gets are already decrypted.
const http = require('node:http');
const { createServiceAgent } = require('nodesockd');

const server = http.createServer((_req, res) => res.end('Hello over TLS ended in the front\n'));
createServiceAgent({ server });
server.listen({ port: 0, host: '127.0.0.1' });
