/**
 * The one byte relay: a client connection piped both ways to a worker's UNIX socket (no
 * loopback TCP hop), for every front that does not hand the connection itself over: the pool's
 * thread workers, the `listen` front's adopted workers, the dev server.
 *
 * One half-close rule for all of them: each side's end is passed on to the other (both sockets
 * allow half-open), so a client that half-closes its write side after its request (HTTP/1.0
 * tools, `nc -N`) still gets the whole response. A side that closes after an error, or before
 * its end came (a reset, a destroy), takes the other with it. Once the worker's side has closed
 * and the client was sent all of it, the client is closed too: nothing it sends could reach a
 * worker any more (as Node's HTTP server does after `Connection: close`).
 */
import net from 'node:net';

export interface RelayOptions {
  /** Written to the worker before the client's bytes (the pool's hop header, what was read already). */
  head?: Buffer | null;
  /** What to pipe in place of the client, once connected (the daemon ends TLS for an adopted worker). */
  wrap?: (client: net.Socket) => net.Socket;
}

/** A connection not yet made a socket (the `listen` front's bare handles): made one once connected. */
export interface UnwrappedClient {
  readonly destroyed: boolean;
  toSocket(options: { allowHalfOpen: boolean }): net.Socket;
}

/**
 * Connects to `path` and pipes `client` (or `wrap(client)`) both ways, after `head`. Resolves
 * once connected with the socket piped, or null when the client had gone meanwhile (the
 * connection to the worker is closed then). Rejects, leaving `client` untouched (paused if it
 * was) so another worker can take it, when the connect fails.
 */
export function relay(
  client: net.Socket | UnwrappedClient,
  path: string,
  options: RelayOptions = {},
): Promise<net.Socket | null> {
  // Set before the client's end can be read: net would otherwise end our side at its FIN.
  if (client instanceof net.Socket) client.allowHalfOpen = true;
  return new Promise((resolve, reject) => {
    const upstream = net.connect({ path, allowHalfOpen: true });
    const failed = (err: Error): void => {
      upstream.destroy();
      reject(err);
    };
    upstream.once('error', failed);
    upstream.once('connect', () => {
      upstream.removeListener('error', failed);
      if (client.destroyed) {
        upstream.destroy();
        resolve(null);
        return;
      }
      const socket = client instanceof net.Socket ? client : client.toSocket({ allowHalfOpen: true });
      const piped = options.wrap?.(socket) ?? socket;
      piped.allowHalfOpen = true;
      if (options.head) upstream.write(options.head);
      splice(piped, upstream);
      resolve(piped);
    });
  });
}

/** Pipes `client` and `upstream` both ways (with backpressure) under the half-close rule above. */
function splice(client: net.Socket, upstream: net.Socket): void {
  const broken = (): void => {
    client.destroy();
    upstream.destroy();
  };
  client.on('error', broken);
  upstream.on('error', broken);
  // A clean close has already passed its end on through the pipe.
  client.once('close', (hadError) => {
    if (hadError || !client.readableEnded) upstream.destroy();
  });
  upstream.once('close', (hadError) => {
    if (hadError || !upstream.readableEnded) client.destroy();
    else if (client.writableFinished) client.destroy();
    else client.once('finish', () => client.destroy());
  });
  // As an HTTP server does with its own sockets: small answers leave at once.
  client.setNoDelay(true);
  client.pipe(upstream);
  upstream.pipe(client);
}
