/**
 * The daemon's side of the listen hint (app/listen-hint.ts): a starting worker that listened on
 * a port or path other than its socket is named in the log at once, and the reason it then
 * never comes online says how to fix it, with its last stdout lines (where apps print
 * `listening on 3000`).
 */
import { isListenedElsewhereMessage } from '../../ipc/worker-protocol';
import type { Logger } from '../../log';
import type { ManagedWorker } from './managed-worker';

/** `port 3000`, `127.0.0.1:3000` or a path, as the worker reported it (escaped: it is the app's text). */
function where(address: string): string {
  const shown = JSON.stringify(address).slice(1, -1);
  return /^\d+$/.test(address) ? `port ${shown}` : shown;
}

function fix(listenVar: string): string {
  return `call serve(server) from nodesockd, or listen on process.env.${listenVar} (docs/worker-library.md#the-contract)`;
}

/**
 * Watches the worker's reports; returns what to add to the reason it failed to come online
 * (null when it listened nowhere else).
 */
export function watchListenHint(
  worker: ManagedWorker,
  opts: { listenVar: string; lastStdout: () => string[]; log: Logger },
): () => string | null {
  const addresses = worker.listenedElsewhere;
  worker.on('message', (message: unknown) => {
    if (!isListenedElsewhereMessage(message)) return;
    addresses.push(where(message.address));
    if (worker.state !== 'starting') return;
    opts.log.warn(
      `worker ${worker.id}: listened on ${where(message.address)}, not on its socket ` +
        `(process.env.${opts.listenVar}); nginx reaches a worker only there: ${fix(opts.listenVar)}`,
    );
  });
  return () => {
    if (addresses.length === 0) return null;
    const stdout = opts.lastStdout();
    return (
      `it listened on ${addresses.join(', ')} instead of process.env.${opts.listenVar}: ${fix(opts.listenVar)}` +
      (stdout.length > 0 ? `; its last stdout lines:\n  ${stdout.join('\n  ')}` : '')
    );
  };
}
