// Our pool: node pool-front.js thread|process — 2 workers, prints "listening <port>".
const net = require('node:net');
const { createServiceProxy } = require('nodesockd');

const server = net.createServer();
const proxy = createServiceProxy({
  server,
  workerCount: 2,
  workerType: process.argv[2] === 'process' ? 'process' : 'thread',
  workerURL: require.resolve('./pool-worker.js'),
});
server.listen({ port: 0, host: '127.0.0.1', backlog: 1024 });
proxy.on('ready', () => console.log(`listening ${server.address().port}`));
// The bench stops it with SIGTERM: the workers drain and remove their relay sockets.
process.once('SIGTERM', () => proxy.shutdown({ timeout: 2000 }).finally(() => process.exit(0)));
