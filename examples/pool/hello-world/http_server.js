// The scaled module: an ordinary http.Server, plus a ServiceAgent.
const http = require('node:http');
const { createServiceAgent } = require('nodesockd');

const server = http.createServer();
const agent = createServiceAgent({ server });

server.on('request', async (req, res) => {
  const { remote } = await agent.requestProxySocketAddressInfo(req.socket);
  res.end(`Hello World! (you are ${remote.address}:${remote.port})\n`);
});

server.listen({ port: 0, host: '127.0.0.1' }); // port 0: the agent tells the front the port
