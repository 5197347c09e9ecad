// Cold start: node cold-front.js ours|socketnaut|cluster <workers> <port> — listens on <port> at
// once, starts <workers> workers, prints "ready" when all are up. The parent times the first answer.
const http = require('node:http');
const net = require('node:net');
const cluster = require('node:cluster');
const { Worker, isMainThread, parentPort } = require('node:worker_threads');
const { handler } = require('./handler.js');
const { pipeTo } = require('./pipe-to.js');

const [kind, count, port] = [process.argv[2], Number(process.argv[3]), Number(process.argv[4])];
const say = (line) => process.stdout.write(`${line}\n`);

if (!isMainThread) {
  // A thread of the Socketnaut pattern: the app on a loopback port, reported to the main thread.
  const server = http.createServer(handler);
  server.listen(0, '127.0.0.1', () => parentPort.postMessage(server.address().port));
} else if (kind === 'ours') {
  const { createServiceProxy } = require('nodesockd');
  const server = net.createServer();
  const proxy = createServiceProxy({
    server,
    workerCount: count,
    workerURL: require.resolve('./pool-worker.js'),
  });
  server.listen({ port, host: '127.0.0.1', backlog: 1024 });
  proxy.once('ready', () => say('ready'));
} else if (kind === 'socketnaut') {
  // Socketnaut's initial spawn: one thread at a time, each waits for the previous one to listen;
  // a connection goes to the online thread with the fewest connections, or waits for the first.
  const online = [];
  const waiting = [];
  const relay = (client) => {
    const w = online.reduce((a, b) => (b.connections < a.connections ? b : a));
    pipeTo(client, w);
  };
  const spawnNext = () => {
    if (online.length === count) return say('ready');
    new Worker(__filename).once('message', (p) => {
      online.push({ port: p, connections: 0 });
      for (const c of waiting.splice(0)) relay(c);
      spawnNext();
    });
  };
  net
    .createServer({ pauseOnConnect: true }, (client) =>
      online.length ? relay(client) : waiting.push(client),
    )
    .listen({ port, host: '127.0.0.1', backlog: 1024 }, spawnNext);
} else if (kind === 'cluster' && cluster.isPrimary) {
  let up = 0;
  for (let i = 0; i < count; i++)
    cluster.fork().once('listening', () => {
      if (++up === count) say('ready');
    });
} else if (kind === 'cluster') {
  http.createServer(handler).listen({ port, host: '127.0.0.1', backlog: 1024 });
} else {
  process.stderr.write(`cold-front: unknown kind ${kind}\n`);
  process.exit(2);
}
