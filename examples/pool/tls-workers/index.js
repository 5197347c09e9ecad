// TLS ended in the workers, HTTP redirected to HTTPS:
//   HTTPS on PORT (default 3443): a raw TCP front, https.Server workers (bytes pass through encrypted);
//   HTTP on HTTP_PORT (default 3080): workers that answer 301 to https://host:PORT.
// The certificate in ../certs is a self-signed one for localhost: for trying it out only.
const { startFront, stopOnSignal } = require('../front.js');

const https = startFront(require.resolve('./https_server.js'), { port: Number(process.env.PORT ?? 3443) });
https.once('ready', () => {
  process.env.HTTPS_PORT = String(https.server.address().port);
  const redirect = startFront(require.resolve('./redirect_server.js'), {
    port: Number(process.env.HTTP_PORT ?? 3080),
  });
  stopOnSignal(https, redirect);
});
