const Fastify = require('fastify');
const { createServiceAgent } = require('nodesockd');

const fastify = Fastify();
fastify.get('/', async () => 'Hello from Fastify\n');

createServiceAgent({ server: fastify.server }); // fastify.server is its http.Server
fastify.listen({ port: 0, host: '127.0.0.1' });
