// An Express app run by nodesockd. Standalone (`node app.js`) it serves on PORT or 3000.
const http = require('node:http');
const express = require('express');
const { nodesockd, serve, suspend } = require('nodesockd');

const app = express();

// During `restart --suspended`, requests wait here until `nodesockd resume`.
app.use(suspend.express);

app.get('/', (_req, res) => {
  res.json({ hello: 'world', worker: nodesockd.id ?? 'standalone', pid: process.pid });
});

app.post('/echo', express.text({ type: '*/*' }), (req, res) => {
  res.type('text/plain').send(req.body);
});

// A slow endpoint to watch a restart drain: /slow?ms=3000
app.get('/slow', (req, res) => {
  const ms = Math.min(Number(req.query.ms) || 1000, 60_000);
  setTimeout(() => res.json({ waited: ms, pid: process.pid }), ms);
});

serve(http.createServer(app), { port: Number(process.env.PORT) || 3000 });
