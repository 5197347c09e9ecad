/**
 * Giving a Node server a connection it did not accept itself, as the front's receivers do
 * (src/app/front-receiver.ts for plain TCP, src/app/tls-receiver.ts once TLS is ended): the connection is counted
 * as net.Server counts the ones it accepts (lib/net.js `onconnection`), then emitted. The
 * socket's end uncounts it and lets a closing server emit 'close' once the last one is gone.
 * Uncounted, `server.close()` would call back at once while handed connections still carry
 * requests, and an app that exits then (`serve()`, or `server.close(() => process.exit(0))`)
 * would cut them, idle kept-alive ones included.
 */
import type net from 'node:net';

interface CountingServer {
  _connections: number;
}
interface ServedSocket {
  _server: net.Server | null;
}

export function injectConnection(
  server: net.Server,
  socket: net.Socket,
  event: 'connection' | 'secureConnection' = 'connection',
): void {
  const counting = server as unknown as CountingServer;
  if (typeof counting._connections === 'number') {
    counting._connections++;
    (socket as unknown as ServedSocket)._server = server;
  }
  server.emit(event, socket);
}
