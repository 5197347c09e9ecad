const Koa = require('koa');
const { createServiceAgent } = require('nodesockd');

const app = new Koa();
app.use((ctx) => {
  ctx.body = 'Hello from Koa\n';
});

const server = app.listen({ port: 0, host: '127.0.0.1' }); // app.listen returns the http.Server
createServiceAgent({ server });
