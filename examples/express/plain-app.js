// The original contract, without the library: listen on LISTEN_ON, say 'online',
// close on 'shutdown'. Standalone: LISTEN_ON=3000 node plain-app.js
const express = require('express');

const app = express();
app.get('/', (_req, res) => res.json({ hello: 'world', pid: process.pid }));

const server = app.listen(process.env.LISTEN_ON || 3000, () => {
  if (process.send) {
    process.on('message', (message) => {
      if (message === 'shutdown') server.close(() => process.exit(0));
    });
    process.send('online');
  }
});
