/**
 * The worker side of a `listen` entry with `accept: "workers"` (src/fronts/shared-listener.ts):
 * the daemon sends the entry's listening socket once; this worker listens on its copy and
 * gives each connection it accepts to `deliver`, the path of the front's handed connections
 * (front-receiver.ts: the app's server, TLS ended first for a TLS entry). Asked to stop, the
 * worker closes its copies first thing: the connections not yet accepted wait in the kernel's
 * queue for the other workers (the daemon keeps the socket open). So does a worker whose
 * daemon is gone.
 */
import net from 'node:net';
import { type FrontHandoffMeta, isSharedListenerMessage } from '../ipc/worker-protocol';
import { channelRelease } from './channel';

export function installSharedAccept(
  deliver: (socket: net.Socket, meta: FrontHandoffMeta) => void,
  onShutdown: (stop: () => void) => void,
  shuttingDown: () => boolean,
): void {
  const listeners = new Set<net.Server>();
  const stop = (): void => {
    for (const server of listeners) server.close();
    listeners.clear();
  };
  onShutdown(stop);
  // The daemon is gone (killed, or handed over by `restart --upgrade`): the next one binds the
  // port or takes the socket, and adopted workers cannot hold it (the port closes meanwhile,
  // as with the daemon accepting).
  process.once('disconnect', stop);
  // A 'disconnect' listener refs the channel, like a 'message' one: take that back.
  channelRelease();
  // An 'internalMessage' listener keeps no worker alive.
  process.on('internalMessage', (message: unknown, handle: unknown) => {
    if (!isSharedListenerMessage(message) || typeof handle !== 'object' || handle === null) return;
    const listening = handle as { close?: () => void };
    if (shuttingDown()) {
      listening.close?.();
      return;
    }
    const meta: FrontHandoffMeta = { entry: message.entry, tls: message.tls };
    const server = net.createServer((socket) => {
      try {
        deliver(socket, meta);
      } catch (err) {
        process.stderr.write(
          `nodesockd: closing a connection of listen entry ${meta.entry}: ${err instanceof Error ? err.message : String(err)}\n`,
        );
        socket.destroy();
      }
    });
    server.on('error', (err) =>
      process.stderr.write(`nodesockd: listen entry ${meta.entry}: ${err.message}\n`),
    );
    // The app's own servers keep the worker alive, not this one.
    server.unref();
    try {
      server.listen(handle as net.Server);
    } catch (err) {
      // Never the worker's end: the daemon's other workers still accept.
      process.stderr.write(
        `nodesockd: cannot accept on listen entry ${meta.entry}: ${err instanceof Error ? err.message : String(err)}\n`,
      );
      listening.close?.();
      return;
    }
    listeners.add(server);
  });
}
