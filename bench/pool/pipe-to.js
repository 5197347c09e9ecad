// Socketnaut's relay step, shared by relay.js and cold-front.js: connect to a worker thread's
// loopback port, pipe the client both ways, count the worker's connections.
const net = require('node:net');

function pipeTo(client, worker) {
  worker.connections += 1;
  const upstream = net.connect(worker.port, '127.0.0.1', () => {
    client.pipe(upstream);
    upstream.pipe(client);
  });
  const done = () => {
    client.destroy();
    upstream.destroy();
  };
  client.once('close', () => {
    worker.connections -= 1;
    done();
  });
  upstream.once('close', done);
  client.on('error', done);
  upstream.on('error', done);
}

module.exports = { pipeTo };
