/**
 * Loaded into every worker with `--require` by the daemon (docs/worker-library.md#what-the-preload-does).
 *
 * - A worker's stdout and stderr are pipes to the daemon; if the daemon dies (SIGKILL, an
 *   upgrade) a write gets EPIPE, and an unhandled 'error' on process.stdout would kill a worker
 *   that is still serving (docs/lifecycle.md#when-the-daemon-dies). The output is lost until the
 *   worker is replaced; the process is not.
 * - SIGUSR1 does not open Node's inspector (unless the app asked for it).
 * - The worker runtime is created here, for every app, so that every worker reconnects to the
 *   next daemon after a crash or an upgrade (reconnect.ts), with or without the library.
 * - `drain`: the app's own `server.close()` becomes nginx-safe once the daemon asked the worker
 *   to stop (preload-drain.ts).
 * - Connections handed over by the daemon's `listen` front are served by the app's server
 *   (front-receiver.ts). One patch of `listen()` sees the app's servers for all three (worker-servers.ts).
 * - A handle sent to the daemon must be a socket or a FIFO; any other descriptor would abort the
 *   daemon inside Node (send-handle-guard.ts).
 */
import { installFrontReceiver } from './front-receiver.js';
import { installListenHint } from './listen-hint.js';
import { installPreloadDrain } from './preload-drain.js';
import { preloadFeature, shared } from './runtime.js';
import { installSendHandleGuard } from './send-handle-guard.js';

const lostReader = new Set(['EPIPE', 'ERR_STREAM_DESTROYED', 'ERR_STREAM_WRITE_AFTER_END']);

for (const stream of [process.stdout, process.stderr]) {
  stream.on('error', (err: NodeJS.ErrnoException) => {
    if (lostReader.has(err.code ?? '')) return;
    throw err;
  });
}

/**
 * Node opens its inspector on 127.0.0.1:9229 when it receives SIGUSR1: anyone on the host who
 * can connect there runs code as the worker's user. A SIGUSR1 listener replaces that default,
 * so a stray SIGUSR1 (an nginx-style logrotate script, `systemctl kill -s USR1`) is ignored.
 * An app that asked for the inspector (`--inspect…` in nodeArgs or NODE_OPTIONS) keeps it.
 */
const inspectorWanted = [...process.execArgv, ...(process.env.NODE_OPTIONS ?? '').split(/\s+/)].some((arg) =>
  /^--inspect(-brk|-port|-wait)?(=|$)/.test(arg),
);
if (!inspectorWanted) process.on('SIGUSR1', () => {});

installSendHandleGuard();
// Creating the shared runtime is what installs the reconnection (see runtime.ts).
void shared.worker;
if (preloadFeature('drain')) installPreloadDrain();
installListenHint();
// Connections the daemon's `listen` front hands over go to the app's server on the worker's socket.
if (shared.worker.managed && shared.worker.socketPath !== undefined)
  installFrontReceiver(
    shared.worker.socketPath,
    () => shared.shutdownRequested,
    (stop) => shared.worker.once('shutdown', stop),
  );
