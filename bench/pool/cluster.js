// node:cluster (round robin, the default on Linux), 2 workers of the same app.
const cluster = require('node:cluster');
const http = require('node:http');
const { handler } = require('./handler.js');

if (cluster.isPrimary) {
  const server = require('node:net').createServer();
  server.listen(0, '127.0.0.1', () => {
    const port = server.address().port;
    server.close(() => {
      let online = 0;
      for (let i = 0; i < 2; i++) {
        cluster.fork({ PORT: String(port) }).on('listening', () => {
          online += 1;
          if (online === 2) console.log(`listening ${port}`);
        });
      }
    });
  });
} else {
  http.createServer(handler).listen({ port: Number(process.env.PORT), host: '127.0.0.1', backlog: 1024 });
}
