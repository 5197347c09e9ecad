// The front shared by the pool examples: a ServiceProxy on PORT (default 3000) for the
// example's worker.js. WORKER_TYPE=process gives process workers (handle passing, no relay).
// Written like a Socketnaut program: only the import says 'nodesockd'.
const net = require('node:net');
const { createServiceProxy } = require('nodesockd');

function startFront(
  workerURL,
  { server = net.createServer(), port = Number(process.env.PORT ?? 3000) } = {},
) {
  const proxy = createServiceProxy({
    server,
    minWorkers: 2,
    maxWorkers: 4,
    workersCheckingInterval: 10_000,
    workerType: process.env.WORKER_TYPE === 'process' ? 'process' : 'thread',
    workerURL,
  });
  server.listen({ port, host: '127.0.0.1' });
  proxy.on('ready', () => console.log(`listening on ${server.address().port}`));
  return proxy;
}

/** Stop every front gracefully on SIGTERM or Ctrl-C. */
function stopOnSignal(...proxies) {
  const stop = () =>
    Promise.all(proxies.map((p) => p.shutdown({ timeout: 5000 }))).then(() => process.exit(0));
  process.once('SIGTERM', stop);
  process.once('SIGINT', stop);
}

module.exports = { startFront, stopOnSignal };
