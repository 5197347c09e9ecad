/**
 * The worker side of the daemon's TCP front (tcp-front.ts), loaded by the preload: a
 * connection handed over by the daemon is emitted as a 'connection' on the app's HTTP server
 * that listens on the worker's socket (the documented way to inject a connection into a Node
 * server), so an unchanged app serves it; `req.socket.remoteAddress` is the client's own.
 * A worker that is shutting down, or has no such server listening, refuses the handle and
 * the daemon gives it to another worker.
 */
import net from 'node:net';
import { acceptHandoffs } from '../pool/handoff';

/**
 * What net.Server does for a connection it accepted itself (lib/net.js `onconnection`): it counts
 * it, and the socket's end uncounts it and lets a closing server emit 'close' once the last one
 * is gone. A socket emitted by hand is not counted, so `server.close()` would call back at once
 * while handed connections still carry requests, and an app that exits then (`serve()`, or
 * `server.close(() => process.exit(0))`) would cut them, idle kept-alive ones included.
 */
interface CountingServer {
  _connections: number;
}
interface ServedSocket {
  _server: net.Server | null;
}

function countOn(server: net.Server, socket: net.Socket): void {
  const counting = server as unknown as CountingServer;
  if (typeof counting._connections !== 'number') return;
  counting._connections++;
  (socket as unknown as ServedSocket)._server = server;
}

interface CountedChannel {
  unref(): void;
  unrefCounted?: () => void;
}

/** `shuttingDown`: the daemon asked this worker to stop (it takes no new connections then). */
export function installFrontReceiver(socketPath: string, shuttingDown: () => boolean): void {
  if (typeof process.send !== 'function') return;
  const servers = new Set<net.Server>();
  const listen = net.Server.prototype.listen;
  net.Server.prototype.listen = function patchedListen(this: net.Server, ...args: unknown[]) {
    this.once('listening', () => {
      if (this.address() !== socketPath) return;
      servers.add(this);
      this.once('close', () => servers.delete(this));
    });
    return (listen as (...a: unknown[]) => net.Server).apply(this, args);
  } as net.Server['listen'];

  acceptHandoffs((socket) => {
    if (shuttingDown()) throw new Error('the worker is shutting down');
    const server = [...servers].find((s) => s.listening);
    if (!server) throw new Error(`no server listens on ${socketPath}`);
    countOn(server, socket);
    server.emit('connection', socket);
  });
  // Our 'message' listener must not keep the worker alive (the app's own listeners still do).
  const channel = (process as { channel?: CountedChannel }).channel;
  if (typeof channel?.unrefCounted === 'function') channel.unrefCounted();
}
