/**
 * In the worker, through the preload: the one watcher of `listen()` calls. It patches
 * `net.Server.prototype.listen` once, for everything the preload needs to know of the app's
 * servers: each call as it is made (listen-hint.ts), and the servers that listen on the
 * worker's socket, as they come and go (front-receiver.ts hands them connections,
 * preload-drain.ts guards them). The call itself goes on unchanged; the hooks run before the
 * app's own `'listening'` callback.
 */
import net from 'node:net';

type ListenCall = (server: net.Server, args: unknown[]) => void;
type Listening = (server: net.Server) => void;

const calls: ListenCall[] = [];
const listening: Listening[] = [];
let patched = false;

function patchListen(): void {
  if (patched) return;
  patched = true;
  const listen = net.Server.prototype.listen;
  net.Server.prototype.listen = function watchedListen(this: net.Server, ...args: unknown[]) {
    for (const call of calls) call(this, args);
    if (listening.length > 0) {
      this.once('listening', () => {
        for (const hook of listening) hook(this);
      });
    }
    return (listen as (...a: unknown[]) => net.Server).apply(this, args);
  } as net.Server['listen'];
}

/** Calls `hook` with the server and the arguments of every `listen()` call, as it is made. */
export function onListenCall(hook: ListenCall): void {
  patchListen();
  calls.push(hook);
}

/** The servers listening on one UNIX socket (the worker's), as they come and go. */
export class SocketServers {
  readonly #servers = new Set<net.Server>();
  readonly #added: Listening[] = [];

  constructor(readonly socketPath: string) {
    patchListen();
    listening.push((server) => {
      if (server.address() !== socketPath) return;
      this.#servers.add(server);
      server.once('close', () => this.#servers.delete(server));
      for (const hook of this.#added) hook(server);
    });
  }

  /** A server that listens on the socket now, if any. */
  find(): net.Server | undefined {
    for (const server of this.#servers) if (server.listening) return server;
    return undefined;
  }

  /** Calls `hook` with each server that starts listening on the socket from now on. */
  onServer(hook: Listening): void {
    this.#added.push(hook);
  }
}

let workerSocket: SocketServers | null = null;

/** The registry of the servers on the worker's socket (one per process). */
export function socketServers(socketPath: string): SocketServers {
  if (workerSocket !== null && workerSocket.socketPath !== socketPath)
    throw new Error(`the worker's socket is ${workerSocket.socketPath}, not ${socketPath}`);
  workerSocket ??= new SocketServers(socketPath);
  return workerSocket;
}
