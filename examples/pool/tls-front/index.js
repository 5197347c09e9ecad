// TLS ended in the front, HTTP redirected to HTTPS:
//   HTTPS on PORT (default 3443): a tls.Server front, plain HTTP workers behind it;
//   HTTP on HTTP_PORT (default 3080): workers that answer 301 to https://host:PORT.
// The certificate in ../certs is a self-signed one for localhost: for trying it out only.
const fs = require('node:fs');
const path = require('node:path');
const tls = require('node:tls');
const { startFront, stopOnSignal } = require('../front.js');

const certs = path.join(__dirname, '..', 'certs');
const server = tls.createServer({
  key: fs.readFileSync(path.join(certs, 'key.pem')),
  cert: fs.readFileSync(path.join(certs, 'cert.pem')),
});
const https = startFront(require.resolve('./http_server.js'), {
  server,
  port: Number(process.env.PORT ?? 3443),
});
https.once('ready', () => {
  process.env.HTTPS_PORT = String(server.address().port);
  const redirect = startFront(require.resolve('../tls-workers/redirect_server.js'), {
    port: Number(process.env.HTTP_PORT ?? 3080),
  });
  stopOnSignal(https, redirect);
});
