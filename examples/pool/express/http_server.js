const http = require('node:http');
const express = require('express');
const { createServiceAgent } = require('nodesockd');

const app = express();
app.get('/', (_req, res) => res.send('Hello from Express\n'));

const server = http.createServer(app);
createServiceAgent({ server });
server.listen({ port: 0, host: '127.0.0.1' });
