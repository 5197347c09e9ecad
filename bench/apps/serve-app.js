// Bench app written with the library: serve() listens on the worker's socket, reports online,
// and drains on shutdown. Standalone (boot-time measurement) it listens on 127.0.0.1:$PORT.
const http = require('node:http');
const { serve } = require('nodesockd');

const server = http.createServer((req, res) => {
  let received = 0;
  req.on('data', (chunk) => {
    received += chunk.length;
  });
  req.on('end', () => {
    res.setHeader('content-type', 'application/json');
    res.end(JSON.stringify({ pid: process.pid, method: req.method, received }));
  });
});

serve(server, { port: Number(process.env.PORT) || 0, host: '127.0.0.1' }).then(() =>
  console.log(`listening (pid ${process.pid})`),
);
