/**
 * `nodesockd/client`: the original nodesockd's `NodesockdClient` on this daemon's control
 * protocol (docs/migrating.md#the-client-library). One method per CLI command.
 *
 * @example
 * ```ts
 * import { NodesockdClient } from 'nodesockd/client';
 * const client = new NodesockdClient('/run/app/nodesockd.ipc');
 * await client.run();
 * console.log(await client.getStatus());
 * await client.terminate();
 * ```
 */
import net from 'node:net';
import { request } from '../ipc/client.js';
import type { Commands, DaemonStatus, RestartResult, WorkerResult } from '../ipc/protocol.js';
import { replyItems } from '../ipc/reply-items.js';
import { trustedSocketPath } from '../ipc/socket-trust.js';

export type { DaemonStatus, WorkerResult } from '../ipc/protocol.js';
/** One reply of {@link NodesockdClient.sendAppRequest}: a worker and its answer (or error). */
export type DaemonApplicationRequestReply = WorkerResult;

/** The daemon's control socket cannot be reached (no daemon, or no permission). */
export class IpcConnectionError extends Error {
  constructor(
    readonly ipcPath: string,
    override readonly cause: Error,
  ) {
    super(
      `Failed to connect to IPC socket '${ipcPath}'. Is the Nodesockd daemon running? (${cause.message})`,
    );
    this.name = 'IpcConnectionError';
  }
}
/** The original's class name for the same error. */
export { IpcConnectionError as IpcConnectError };

export class NodesockdClient {
  #running = false;

  constructor(readonly ipcPath: string) {}

  /** Checks that the daemon answers on its control socket; rejects with {@link IpcConnectionError}. */
  async run(): Promise<void> {
    await new Promise<void>((resolve, reject) => {
      const socket = net.connect(trustedSocketPath(this.ipcPath));
      socket.once('connect', () => {
        socket.destroy();
        resolve();
      });
      socket.once('error', (err) => reject(new IpcConnectionError(this.ipcPath, err)));
    });
    this.#running = true;
  }

  /** Ends the client. Each command uses its own connection, so nothing stays open. */
  async terminate(): Promise<void> {
    this.#running = false;
  }

  async #call<K extends keyof Commands>(type: K, data?: Commands[K]['data']): Promise<Commands[K]['reply']> {
    if (!this.#running) throw new Error('NodesockdClient: call run() first');
    const send = request as (
      path: string,
      type: K,
      data?: Commands[K]['data'],
      options?: { timeoutMs?: number },
    ) => Promise<Commands[K]['reply']>;
    try {
      return await send(this.ipcPath, type, data);
    } catch (err) {
      const e = err instanceof Error ? err : new Error(String(err));
      if (/^no daemon is running at |^permission denied on /.test(e.message)) {
        throw new IpcConnectionError(this.ipcPath, e);
      }
      throw e;
    }
  }

  getStatus(): Promise<DaemonStatus> {
    return this.#call('status');
  }

  getConfig(): Promise<Commands['config']['reply']> {
    return this.#call('config');
  }

  startWorkers(suspended = false, maxAttempts?: number): Promise<Commands['start']['reply']> {
    return this.#call('start', { suspended, maxAttempts });
  }

  /**
   * A zero-downtime restart. `upgrade` is not carried out by the client (the CLI's
   * `restart --upgrade` hands over to a newer daemon); here it re-reads the config first, as the
   * original did when there was nothing to upgrade.
   */
  async restartWorkers(suspended = false, maxAttempts?: number, upgrade = false): Promise<RestartResult> {
    if (upgrade) await this.#call('reload');
    return this.#call('restart', { suspended, maxAttempts });
  }

  resumeWorkers(): Promise<Commands['resume']['reply']> {
    return this.#call('resume');
  }

  stopWorkers(): Promise<Commands['stop']['reply']> {
    return this.#call('stop');
  }

  setWorkerCount(count: number): Promise<Commands['set-workers']['reply']> {
    return this.#call('set-workers', { count });
  }

  setStandbyCount(count: number): Promise<Commands['set-standby']['reply']> {
    return this.#call('set-standby', { count });
  }

  reloadConfig(): Promise<Commands['reload']['reply']> {
    return this.#call('reload');
  }

  /** Stops the daemon and its workers; resolves with the daemon's pid. */
  async terminateDaemon(): Promise<number> {
    return (await this.#call('terminate')).pid;
  }

  sendAppMessage(message: string, data?: unknown, workers?: string): Promise<Commands['send-msg']['reply']> {
    return this.#call('send-msg', { name: message, data, workers });
  }

  /** One reply per worker, or per item when a worker's handler streams. */
  async *sendAppRequest(
    requestName: string,
    data?: unknown,
    workers?: string,
  ): AsyncIterableIterator<DaemonApplicationRequestReply> {
    const { results } = await this.#call('send-req', { name: requestName, data, workers });
    yield* replyItems(results);
  }
}
