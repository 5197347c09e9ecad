/**
 * The daemon's own TCP front (SPEC §6, `listen`): the daemon owns the listening sockets and
 * hands each accepted connection's handle to a serving slot worker over its IPC channel
 * (src/pool/handoff.ts), round robin over the slots. No byte passes through the daemon, and
 * the app sees the client's own address. The worker's preload emits the connection on the
 * app's server (src/fronts/tcp-receiver.ts).
 *
 * A worker that cannot take a handle (no channel: adopted from an earlier daemon; exited;
 * draining) is skipped. With no serving worker the connection stays paused (the client's
 * bytes wait in the kernel) and is retried for {@link NO_WORKER_GRACE_MS}, then closed.
 */
import type { ChildProcess } from 'node:child_process';
import net from 'node:net';
import type { FrontHandoffMeta } from '../ipc/worker-protocol';
import { errorMessage, type Logger } from '../log';
import { HandoffSender } from '../pool/handoff';
import type { TlsDistributor } from './tls-material';

/** How long a connection waits for a serving worker before it is closed. */
export const NO_WORKER_GRACE_MS = 5000;
const RETRY_MS = 50;

export interface FrontAddress {
  host: string;
  port: number;
}

/** A worker the front may hand connections to. */
export interface FrontTarget {
  id: string;
  /** Its process, when it has an IPC channel that carries handles (a child of this daemon). */
  child: ChildProcess | null;
}

export class TcpFront {
  private readonly servers: net.Server[] = [];
  private readonly senders = new WeakMap<ChildProcess, HandoffSender>();
  private readonly handedOut = new Map<string, number>();
  private readonly waiting = new Set<net.Socket>();
  private next = 0;
  private closed = false;

  constructor(
    private readonly addresses: FrontAddress[],
    /** The serving slot workers, in slot order. */
    private readonly targets: () => FrontTarget[],
    private readonly log: Logger,
    /** The TLS entries' material, given to a worker before its first TLS connection. */
    private readonly tls: TlsDistributor | null = null,
  ) {}

  /** Binds every address; rejects with one line naming the address that failed. */
  async listen(): Promise<void> {
    for (const [entry, address] of this.addresses.entries()) {
      const server = net.createServer({ pauseOnConnect: true }, (socket) => this.accept(socket, entry));
      await new Promise<void>((resolve, reject) => {
        server.once('error', (err) =>
          reject(new Error(`listen: cannot listen on ${formatAddress(address)}: ${err.message}`)),
        );
        server.listen({ host: address.host, port: address.port }, () => resolve());
      });
      server.on('error', (err) => this.log.error(`listen: ${errorMessage(err)}`));
      this.servers.push(server);
      this.log.info(`listening on ${this.describe(server)}`);
    }
  }

  /** The bound addresses ("host:port", the real port when 0 was asked for). */
  addressesBound(): string[] {
    return this.servers.map((s) => this.describe(s));
  }

  /** Connections handed to each worker so far, by worker id. */
  counts(): Record<string, number> {
    return Object.fromEntries(this.handedOut);
  }

  /** Stops accepting; connections already handed over stay with their workers. */
  async close(): Promise<void> {
    this.closed = true;
    for (const socket of this.waiting) socket.destroy();
    this.waiting.clear();
    await Promise.all(this.servers.map((s) => new Promise<void>((resolve) => s.close(() => resolve()))));
  }

  private describe(server: net.Server): string {
    const a = server.address();
    if (a === null || typeof a === 'string') return String(a);
    return formatAddress({ host: a.address, port: a.port });
  }

  private accept(socket: net.Socket, entry: number): void {
    // A client that resets while it waits must not become an uncaught error.
    socket.on('error', () => undefined);
    this.waiting.add(socket);
    void this.dispatch(socket, Date.now() + NO_WORKER_GRACE_MS, entry);
  }

  private async dispatch(socket: net.Socket, deadline: number, entry: number): Promise<void> {
    const meta: FrontHandoffMeta = { entry, tls: this.tls?.isTls(entry) ?? false };
    while (!this.closed && !socket.destroyed) {
      const targets = this.targets();
      for (let tried = 0; tried < targets.length; tried++) {
        const target = targets[this.next++ % targets.length]!;
        const sender = this.senderFor(target);
        if (!sender) continue;
        try {
          if (meta.tls && target.child) this.tls?.prepare(target.child);
          await sender.send(socket, meta);
          this.waiting.delete(socket);
          this.handedOut.set(target.id, (this.handedOut.get(target.id) ?? 0) + 1);
          return;
        } catch (err) {
          this.log.debug(`listen: worker ${target.id} did not take a connection: ${errorMessage(err)}`);
          if (socket.destroyed) break;
        }
      }
      if (Date.now() >= deadline) {
        this.log.warn(`listen: no serving worker for ${NO_WORKER_GRACE_MS} ms; closing a connection`);
        break;
      }
      await new Promise((resolve) => setTimeout(resolve, RETRY_MS));
    }
    this.waiting.delete(socket);
    socket.destroy();
  }

  private senderFor(target: FrontTarget): HandoffSender | null {
    const child = target.child;
    if (!child?.connected) return null;
    let sender = this.senders.get(child);
    if (!sender) {
      sender = new HandoffSender(child);
      this.senders.set(child, sender);
    }
    return sender;
  }
}

export function formatAddress({ host, port }: FrontAddress): string {
  return host.includes(':') ? `[${host}]:${port}` : `${host}:${port}`;
}
