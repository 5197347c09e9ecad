import net from 'node:net';
import { Correlator } from '../net/correlator';
import { FrameConnection } from './connection';
import type { CommandName, Commands, Reply } from './protocol';
import { trustedSocketPath } from './socket-trust';

export interface RequestOptions {
  /** Give up when the daemon has not answered within this many milliseconds. */
  timeoutMs?: number;
}

/** The rest of `request()`'s arguments: `data` may be left out when the command takes none. */
export type RequestArgs<K extends CommandName> = undefined extends Commands[K]['data']
  ? [data?: Commands[K]['data'], options?: RequestOptions]
  : [data: Commands[K]['data'], options?: RequestOptions];

type Outcome = { ok: true; data: unknown } | { ok: false; error: Error };

function isReply(value: unknown): value is Reply {
  if (typeof value !== 'object' || value === null) return false;
  const { ok, id, error } = value as { ok?: unknown; id?: unknown; error?: unknown };
  if (ok === true) return typeof id === 'number';
  return ok === false && (typeof id === 'number' || id === null) && typeof error === 'string';
}

function connectError(ipcPath: string, err: NodeJS.ErrnoException): Error {
  if (err.code === 'ENOENT' || err.code === 'ECONNREFUSED') {
    return new Error(`no daemon is running at ${ipcPath} (${err.code})`);
  }
  if (err.code === 'EACCES') return new Error(`permission denied on ${ipcPath}: run as the daemon's user`);
  return new Error(`control socket ${ipcPath}: ${err.message}`);
}

/**
 * Sends one command to the daemon and resolves with its reply's data (rejects with the daemon's
 * error). The connection is closed afterwards; commands are rare enough that a connection each
 * is the simple, robust choice.
 */
export async function request<K extends CommandName>(
  ipcPath: string,
  type: K,
  ...[data, options = {}]: RequestArgs<K>
): Promise<Commands[K]['reply']> {
  const connection = new FrameConnection(net.connect(trustedSocketPath(ipcPath)));
  const replies = new Correlator<Outcome>();
  const failAll = (error: Error) => replies.settleWhere(() => true, { ok: false, error });
  const { timeoutMs } = options;
  const { id, outcome } = replies.open(
    undefined,
    timeoutMs === undefined
      ? undefined
      : {
          ms: timeoutMs,
          outcome: () => ({
            ok: false,
            error: new Error(`the daemon did not answer within ${timeoutMs} ms`),
          }),
        },
  );
  connection.setHandlers({
    frame: (value) => {
      if (!isReply(value)) failAll(new Error('the daemon sent a malformed reply'));
      else if (value.ok) replies.settle(value.id, { ok: true, data: value.data });
      else if (value.id === null) failAll(new Error(value.error));
      else replies.settle(value.id, { ok: false, error: new Error(value.error) });
    },
    invalid: () => failAll(new Error('the daemon sent a malformed reply')),
    overflow: (err) => failAll(err),
  });
  connection.onClose((err) =>
    failAll(err ? connectError(ipcPath, err) : new Error('the daemon closed the connection before replying')),
  );
  connection.send(data === undefined ? { id, type } : { id, type, data });
  const result = await outcome;
  connection.destroy();
  if (!result.ok) throw result.error;
  return result.data as Commands[K]['reply'];
}
