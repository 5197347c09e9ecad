const fs = require('node:fs');
const https = require('node:https');
const path = require('node:path');
const { createServiceAgent } = require('nodesockd');

const certs = path.join(__dirname, '..', 'certs');
const server = https.createServer({
  key: fs.readFileSync(path.join(certs, 'key.pem')),
  cert: fs.readFileSync(path.join(certs, 'cert.pem')),
});
server.on('request', (_req, res) => res.end('Hello over TLS ended in the worker\n'));
createServiceAgent({ server });
server.listen({ port: 0, host: '127.0.0.1' });
