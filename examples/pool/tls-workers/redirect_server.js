// HTTP → HTTPS: a 301 to the same host on the HTTPS front's port.
const http = require('node:http');
const { createServiceAgent } = require('nodesockd');

const httpsPort = process.env.HTTPS_PORT ?? '3443';
const server = http.createServer((req, res) => {
  const host = (req.headers.host ?? 'localhost').replace(/:\d+$/, '');
  res.writeHead(301, { location: `https://${host}:${httpsPort}${req.url}` });
  res.end();
});
createServiceAgent({ server });
server.listen({ port: 0, host: '127.0.0.1' });
