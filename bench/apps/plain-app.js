// Bench app with no library, the seed-style contract on plain node:http: listen on LISTEN_ON,
// send 'online', close the server on 'shutdown'. pm2 stops a worker with SIGINT instead of a
// message, so SIGINT closes it the same way. Without LISTEN_ON it listens on 127.0.0.1:$PORT
// (pm2 cluster mode, and the boot-time measurement).
const http = require('node:http');

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

const close = () => server.close(() => process.exit(0));
process.on('SIGINT', close);

const onListening = () => {
  console.log(`listening (pid ${process.pid})`);
  if (process.send) {
    process.on('message', (message) => {
      if (message === 'shutdown') close();
    });
    process.send('online');
  }
};

if (process.env.LISTEN_ON) server.listen(process.env.LISTEN_ON, onListening);
else server.listen(Number(process.env.PORT) || 0, '127.0.0.1', onListening);
