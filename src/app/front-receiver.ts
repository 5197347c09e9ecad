/**
 * The worker side of the daemon's TCP front (fronts/tcp-front.ts), loaded by the preload: a
 * connection handed over by the daemon is emitted as a 'connection' on the app's HTTP server
 * that listens on the worker's socket (the documented way to inject a connection into a Node
 * server), so an unchanged app serves it; `req.socket.remoteAddress` is the client's own.
 * A worker that is shutting down, or has no such server listening, refuses the handle and
 * the daemon gives it to another worker. A connection from a `listen` entry with `tls` is
 * decrypted here first (tls-receiver.ts); without that entry's material yet, it is refused.
 * An entry whose workers accept themselves gives its connections the same path (shared-accept.ts).
 */
import type net from 'node:net';
import { isFrontHandoffMeta, isMovedHandoffMeta } from '../ipc/worker-protocol';
import { acceptHandoffs } from '../net/handoff';
import { injectConnection } from '../net/inject';
import { installSharedAccept } from './shared-accept';
import { TlsTerminator } from './tls-receiver';
import { socketServers } from './worker-servers';

interface CountedChannel {
  unref(): void;
  unrefCounted?: () => void;
}

/**
 * `shuttingDown`: the daemon asked this worker to stop (it takes no new connections then);
 * `onShutdown` runs its callback when that happens.
 */
export function installFrontReceiver(
  socketPath: string,
  shuttingDown: () => boolean,
  onShutdown: (stop: () => void) => void,
): void {
  if (typeof process.send !== 'function') return;
  const servers = socketServers(socketPath);
  const findServer = () => servers.find();
  const terminator = new TlsTerminator();
  terminator.install();
  const deliver = (socket: net.Socket, meta: unknown): void => {
    const server = findServer();
    if (!server) throw new Error(`no server listens on ${socketPath}`);
    if (isFrontHandoffMeta(meta) && meta.tls) terminator.accept(socket, meta.entry, server, findServer);
    else injectConnection(server, socket);
  };
  acceptHandoffs((socket, meta) => {
    if (shuttingDown()) throw new Error('the worker is shutting down');
    // A connection moved from the worker this one replaces: past its deadline the old worker
    // may have taken it back, and two processes must never serve one connection.
    if (isMovedHandoffMeta(meta) && Date.now() > meta.deadline) throw new Error('the move came too late');
    deliver(socket, meta);
  });
  installSharedAccept(deliver, onShutdown, shuttingDown);
  // Our 'message' listener must not keep the worker alive (the app's own listeners still do).
  const channel = (process as { channel?: CountedChannel }).channel;
  if (typeof channel?.unrefCounted === 'function') channel.unrefCounted();
}
