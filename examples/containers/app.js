// The app of the container recipes: plain node:http, served by nodesockd's serve().
// Standalone (`node app.js`) it serves on PORT or 3000.
const http = require('node:http');
const { nodesockd, serve } = require('nodesockd');

const server = http.createServer((req, res) => {
  const url = new URL(req.url ?? '/', 'http://app');
  // A slow endpoint to watch a stop drain: /slow?ms=3000
  const ms = url.pathname === '/slow' ? Math.min(Number(url.searchParams.get('ms')) || 1000, 60_000) : 0;
  if (ms) console.log(`slow request: answering in ${ms} ms`);
  setTimeout(() => {
    res.setHeader('content-type', 'application/json');
    res.end(
      JSON.stringify({ hello: 'world', worker: nodesockd.id ?? 'standalone', pid: process.pid, waited: ms }),
    );
  }, ms);
});

serve(server);
