// Our pool: node pool-front.js thread|process [reuseport] — 2 workers, prints "listening <port>".
const net = require('node:net');
const { createServiceProxy } = require('nodesockd');

const reusePort = process.argv[3] === 'reuseport';
const [major, minor] = process.versions.node.split('.').map(Number);
const supported = major > 23 || (major === 23 && minor >= 1) || (major === 22 && minor >= 12);
const server = net.createServer();
const proxy = createServiceProxy({
  server,
  workerCount: 2,
  workerType: process.argv[2] === 'process' ? 'process' : 'thread',
  reusePort,
  workerURL: require.resolve('./pool-worker.js'),
});
server.listen({ port: 0, host: '127.0.0.1', backlog: 1024 });
proxy.on('ready', () => {
  // With reusePort: wait until both threads accept on the front's port themselves.
  const check = () => {
    if (reusePort && supported && proxy.stats().direct < 2) setTimeout(check, 10);
    else console.log(`listening ${server.address().port}`);
  };
  check();
});
// The bench stops it with SIGTERM: the workers drain and remove their relay sockets.
process.once('SIGTERM', () => proxy.shutdown({ timeout: 2000 }).finally(() => process.exit(0)));
