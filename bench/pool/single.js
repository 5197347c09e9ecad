// One process, no pool: the baseline the CPU-bound handler must scale from.
const http = require('node:http');
const { handler } = require('./handler.js');

const server = http.createServer(handler);
server.listen({ port: 0, host: '127.0.0.1', backlog: 1024 }, () =>
  console.log(`listening ${server.address().port}`),
);
