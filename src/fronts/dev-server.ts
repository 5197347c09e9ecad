import net from 'node:net';
import { ConnectionCap, closeWhenSilent } from '../connection-guard';
import { limits } from '../listener-limits';
import { errorMessage, type Logger } from '../log';
import { relay } from '../net/relay';

const NO_WORKER =
  'HTTP/1.1 503 Service Unavailable\r\nContent-Type: text/plain\r\nConnection: close\r\nContent-Length: 31\r\n\r\nnodesockd: no worker is online\n';

/**
 * The developer's front (SPEC §6): a TCP proxy on 127.0.0.1 that hands each connection to the
 * next online worker's socket, round robin, so an app runs under nodesockd without nginx.
 * Never a production path: behind nginx the daemon is not in the data path at all.
 * A connection that sends nothing, or goes idle, is closed ({@link closeWhenSilent}); at the
 * cap the oldest one that has sent nothing yet makes room ({@link ConnectionCap}).
 */
export class DevServer {
  private readonly server: net.Server;
  private next = 0;
  private readonly connections = new Set<net.Socket>();
  private readonly cap: ConnectionCap;

  constructor(
    private readonly port: number,
    private readonly sockets: () => string[],
    private readonly log: Logger,
  ) {
    this.cap = new ConnectionCap(limits().devConnections, 'dev server', log, limits().warnIntervalMs);
    this.server = net.createServer((client) => this.accept(client));
    this.server.on('error', (err) => this.log.error(`dev server: ${errorMessage(err)}`));
  }

  listen(): Promise<void> {
    return new Promise((resolve, reject) => {
      const onError = (err: Error) =>
        reject(new Error(`dev server cannot listen on 127.0.0.1:${this.port}: ${err.message}`));
      this.server.once('error', onError);
      this.server.listen(this.port, '127.0.0.1', () => {
        this.server.off('error', onError);
        this.log.info(`dev server listening on http://127.0.0.1:${this.address()}`);
        resolve();
      });
    });
  }

  address(): number {
    const a = this.server.address();
    return typeof a === 'object' && a ? a.port : this.port;
  }

  close(): Promise<void> {
    for (const c of this.connections) c.destroy();
    return new Promise((resolve) => this.server.close(() => resolve()));
  }

  private accept(client: net.Socket): void {
    client.on('error', () => client.destroy());
    if (!this.cap.admit(client)) return;
    this.connections.add(client);
    client.on('close', () => this.connections.delete(client));
    client.pause();
    const { relayHandshakeMs, relayIdleMs } = limits();
    closeWhenSilent(client, relayHandshakeMs, relayIdleMs, () => this.cap.busy(client, true));
    void this.connect(client, this.sockets());
  }

  /** Relays to the online workers in turn (src/net/relay.ts); a worker that refuses is skipped, not fatal. */
  private async connect(client: net.Socket, candidates: string[]): Promise<void> {
    for (let tried = 0; tried < candidates.length; tried++) {
      if (client.destroyed) return;
      const target = candidates[this.next++ % candidates.length]!;
      try {
        await relay(client, target);
        return;
      } catch (err) {
        this.log.debug(`dev server: ${target}: ${errorMessage(err)}; trying the next worker`);
      }
    }
    if (!client.destroyed) client.end(NO_WORKER);
  }
}
