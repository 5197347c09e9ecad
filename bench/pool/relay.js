// Socketnaut's pattern, written here: the main thread accepts, and pipes each client to a
// worker thread's loopback TCP port (2 threads, least connections with rotation).
const net = require('node:net');
const { pipeTo } = require('./pipe-to.js');
const { Worker, isMainThread, parentPort } = require('node:worker_threads');

if (isMainThread) {
  const workers = [];
  for (let i = 0; i < 2; i++) {
    const w = new Worker(__filename);
    const entry = { connections: 0, port: 0 };
    w.once('message', (port) => {
      entry.port = port;
      if (workers.every((x) => x.port)) main();
    });
    workers.push(entry);
  }
  let next = 0;
  const main = () => {
    const server = net.createServer({ pauseOnConnect: true }, (client) => {
      next = (next + 1) % workers.length;
      const w = workers.reduce((a, b, i) =>
        b.connections < a.connections || (b.connections === a.connections && i === next) ? b : a,
      );
      pipeTo(client, w);
    });
    server.listen({ port: 0, host: '127.0.0.1', backlog: 1024 }, () =>
      console.log(`listening ${server.address().port}`),
    );
  };
} else {
  const http = require('node:http');
  const { handler } = require('./handler.js');
  const server = http.createServer(handler);
  server.listen(0, '127.0.0.1', () => parentPort.postMessage(server.address().port));
}
