/**
 * A `listen` entry with `accept: "workers"` (docs/config.md#listen): the serving workers accept
 * its connections themselves, as node:cluster's SCHED_NONE workers do, and the daemon does no
 * work per connection. The daemon binds the socket without listening on it (no poll, so it
 * never accepts) and sends the handle once to each serving worker over its IPC channel; the
 * worker listens on its copy (the first `listen(2)` puts the socket in the LISTEN state) and
 * closes it first thing when asked to stop (src/app/shared-accept.ts). The daemon's own copy
 * keeps the socket open: with no worker accepting, connections wait in the kernel's queue.
 *
 * A worker with no channel that carries handles (adopted after a daemon crash) cannot get it:
 * the daemon then accepts on the entry itself, as for `accept: "daemon"`, for as long as it runs.
 */
import type { ChildProcess } from 'node:child_process';
import dns from 'node:dns/promises';
import net from 'node:net';
import util from 'node:util';
import { MSG_SHARED_LISTENER, type SharedListenerMessage } from '../ipc/worker-protocol';
import { type FrontAddress, formatAddress } from './address';

/** The bound, not listening, TCP handle (Node's TCPWrap). */
interface ServerHandle {
  readonly fd: number;
  getsockname(out: { address?: string; port?: number }): number;
  close(): void;
}

type CreateServerHandle = (address: string, port: number, addressType: number) => ServerHandle | number;

export class SharedListener {
  /** Children that have the handle (sent once each). */
  private readonly given = new WeakSet<ChildProcess>();
  /** The daemon accepts on its copy too (a worker without a channel serves). */
  private server: net.Server | null = null;

  private constructor(
    private readonly handle: ServerHandle,
    private readonly entry: number,
    private readonly tls: boolean,
  ) {}

  /** Binds `address` (no listen); rejects with one line naming it. */
  static async bind(address: FrontAddress, entry: number, tls: boolean): Promise<SharedListener> {
    const fail = (why: string) => new Error(`listen: cannot listen on ${formatAddress(address)}: ${why}`);
    let ip = address.host;
    if (net.isIP(ip) === 0) {
      try {
        ip = (await dns.lookup(ip)).address;
      } catch (err) {
        throw fail(err instanceof Error ? err.message : String(err));
      }
    }
    // The bind-only handle node:cluster's primary makes for SCHED_NONE workers.
    const create = (net as unknown as { _createServerHandle: CreateServerHandle })._createServerHandle;
    const handle = create(ip, address.port, net.isIPv6(ip) ? 6 : 4);
    if (typeof handle === 'number') throw fail(util.getSystemErrorName(handle));
    return new SharedListener(handle, entry, tls);
  }

  /** The bound address ("host:port", the real port when 0 was asked for). */
  address(): FrontAddress {
    const out: { address?: string; port?: number } = {};
    this.handle.getsockname(out);
    return { host: out.address ?? '', port: out.port ?? 0 };
  }

  get fd(): number {
    return this.handle.fd;
  }

  get daemonAccepts(): boolean {
    return this.server !== null;
  }

  /** Sends the handle to `child` unless it has it; false when it cannot be sent (no channel). */
  offer(child: ChildProcess): boolean {
    if (this.given.has(child)) return true;
    if (!child.connected) return false;
    this.given.add(child);
    const message: SharedListenerMessage = { cmd: MSG_SHARED_LISTENER, entry: this.entry, tls: this.tls };
    // A raw handle: Node's channel does not close the sender's copy (unlike a net.Socket).
    child.send(message, this.handle as unknown as net.Server, () => {});
    return true;
  }

  /** Listens on the daemon's copy too, from now on: the server to accept on (src/net/raw-accept.ts). */
  acceptHere(): net.Server {
    if (this.server) return this.server;
    const server = net.createServer();
    server.listen(this.handle as unknown as net.Server);
    this.server = server;
    return server;
  }

  close(): void {
    if (this.server) this.server.close();
    else this.handle.close();
  }
}
