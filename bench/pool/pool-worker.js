// A worker of our pools (threads or processes): the app plus a ServiceAgent.
const http = require('node:http');
const { createServiceAgent } = require('nodesockd');
const { handler } = require('./handler.js');

const server = http.createServer(handler);
createServiceAgent({ server });
server.listen({ port: 0, host: '127.0.0.1' });
