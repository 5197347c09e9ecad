/**
 * The daemon's own TCP front (SPEC §6, `listen`): the daemon owns the listening sockets and
 * hands each accepted connection's handle to a serving slot worker over its IPC channel
 * (src/net/handoff.ts; accepted as bare handles, src/net/raw-accept.ts), round robin over
 * the slots, or by a hash of the client address with `sticky` (src/net/routing.ts). No byte
 * passes through the daemon, and the app sees the client's own address. The worker's preload
 * emits the connection on the app's server (src/app/front-receiver.ts). A worker adopted from
 * an earlier daemon has no channel that carries handles: its connections are relayed
 * (src/fronts/adopted-relay.ts).
 *
 * A worker that exited or is draining is skipped. A connection no worker has room for waits in
 * one queue, oldest first, placed as handoffs settle (no timer or promise per connection). With
 * no serving worker the connection stays paused (the client's bytes wait in the kernel) and is
 * retried for {@link NO_WORKER_GRACE_MS}, then closed (one warning line, then a count per interval). A worker with a full window of
 * unconfirmed handoffs gets none (src/fronts/handoff-window.ts); one stalled past the deadline
 * is reported through `onStalled`. The connections waiting are capped (src/listener-limits.ts):
 * beyond the cap a new connection is closed at once.
 *
 * An entry with `accept: "workers"` is accepted by the workers themselves (src/fronts/shared-listener.ts):
 * {@link TcpFront.offerListeners} gives its handle to each serving worker.
 *
 * The listening sockets may be inherited instead of bound (`restart --upgrade`, systemd's
 * socket activation): src/fronts/inherited-sockets.ts reads them and matches them to the entries.
 */
import type { ChildProcess } from 'node:child_process';
import net from 'node:net';
import type { FrontHandoffMeta } from '../ipc/worker-protocol';
import { limits } from '../listener-limits';
import { errorMessage, type Logger } from '../log';
import { type HandoffSender, handoffSenderFor } from '../net/handoff';
import { type Accepted, acceptRaw } from '../net/raw-accept';
import { targetOrder } from '../net/routing';
import { RepeatedWarning } from '../repeated-warning';
import { type FrontAddress, formatAddress } from './address';
import { AdoptedRelays } from './adopted-relay';
import { HandoffWindow } from './handoff-window';
import { adoptInherited, type InheritedSocket } from './inherited-sockets';
import { SharedListener } from './shared-listener';
import type { TlsDistributor } from './tls-material';

/** How long a connection waits for a serving worker before it is closed (the default of `frontWaitMs`). */
export const NO_WORKER_GRACE_MS = 5000;
const RETRY_MS = 50;
/** Unconfirmed handoffs a worker may have (node:cluster's round robin allows one). */
const HANDOFF_WINDOW = 4;
/** How long a closing front waits for its accepted connections to reach a worker. */
const CLOSE_SETTLE_MS = 5000;

/** An accepted connection that waits for a worker with room. */
interface Waiter {
  connection: Accepted;
  meta: FrontHandoffMeta;
  deadline: number;
  /** Given back by a worker once: its deadline was extended then (only once). */
  extended: boolean;
  /** The worker that last gave it back: not tried again before the next retry. */
  avoid: string | null;
}

/** A worker the front may hand connections to. */
export interface FrontTarget {
  id: string;
  /** Its slot (sticky routing hashes clients to slots). */
  slot: number;
  /** Its process, when it has an IPC channel that carries handles (a child of this daemon). */
  child: ChildProcess | null;
  /** The UNIX socket the worker listens on, for a worker with no such channel (adopted). */
  socketPath: string;
}

export interface FrontOptions {
  /** With `accept: "workers"`, the serving workers accept that entry's connections themselves. */
  addresses: (FrontAddress & { accept?: 'daemon' | 'workers' })[];
  /** The serving slot workers, in slot order. */
  targets: () => FrontTarget[];
  /** How many slots the pool has (sticky routing maps a client to one of them). */
  slots: () => number;
  /** Route by a hash of the client address instead of round robin (read for each connection). */
  sticky: () => boolean;
  /** Listening sockets to use instead of binding (matched to `addresses` by their address). */
  inherited?: InheritedSocket[];
  /** The TLS entries' material: given to a worker before its first TLS connection. */
  tls?: TlsDistributor | null;
  /** A worker that has confirmed no handed connection for the stall deadline (once per worker). */
  onStalled?: (id: string, why: string) => void;
  log: Logger;
}

export class TcpFront {
  /** By entry: the daemon's listening server, or the socket the workers accept on. */
  private readonly servers: (net.Server | SharedListener)[] = [];
  /** Children whose exit already prunes their counts. */
  private readonly watched = new WeakSet<ChildProcess>();
  private readonly handedOut = new Map<string, number>();
  private handedOutTotal = 0;
  /** Connections accepted and not yet taken, relayed or closed. */
  private readonly waiting = new Set<Accepted>();
  /** Those of them that wait for a worker with room, oldest first. */
  private readonly queue: Waiter[] = [];
  private retryTimer: NodeJS.Timeout | null = null;
  private pumping = false;
  private readonly relays: AdoptedRelays;
  private readonly window: HandoffWindow;
  private readonly noWorker: RepeatedWarning;
  private readonly full: RepeatedWarning;
  private readonly limits = limits();
  private next = 0;
  private closed = false;
  /** Wakes a closing front when an accepted connection has been taken (or given up). */
  private settled: (() => void) | null = null;
  /** Connections a closing front accepted and could give to no worker. */
  private dropped = 0;
  private readonly log: Logger;

  constructor(private readonly options: FrontOptions) {
    this.log = options.log;
    this.relays = new AdoptedRelays(this.limits, options.tls, options.log);
    const { handoffStallMs, warnIntervalMs, frontWaiting } = this.limits;
    this.window = new HandoffWindow(HANDOFF_WINDOW, handoffStallMs, (id, n) => {
      const why = `${n} handed connection(s) unconfirmed for ${handoffStallMs} ms`;
      this.log.warn(`listen: worker ${id} is stalled (${why}); it gets no new connection`);
      options.onStalled?.(id, why);
    });
    this.noWorker = new RepeatedWarning(
      (line) => this.log.warn(line),
      (n) =>
        `listen: no serving worker for ${this.limits.frontWaitMs} ms; ${n === 1 ? 'closing a connection' : `closed ${n} connections`}`,
      warnIntervalMs,
    );
    this.full = new RepeatedWarning(
      (line) => this.log.warn(line),
      (n) =>
        `listen: ${frontWaiting} connections already wait for a worker (the cap); closed ${n} new one(s)`,
      warnIntervalMs,
    );
  }

  /**
   * Takes the inherited sockets that match a listen entry, closes the others, and binds every
   * entry left; rejects with one line naming the address that failed.
   */
  async listen(): Promise<void> {
    const { addresses } = this.options;
    const adopted = await adoptInherited(
      this.options.inherited ?? [],
      addresses,
      (connection, entry) => this.accept(connection, entry),
      this.log,
    );
    for (const [i, address] of addresses.entries()) {
      let server: net.Server | SharedListener | undefined = adopted.get(i);
      if (server && address.accept === 'workers') {
        this.log.warn(
          `listen: ${describe(server)} was inherited already listening: the daemon accepts its connections (accept: "workers" takes effect when the daemon binds it)`,
        );
      } else if (!server && address.accept === 'workers') {
        server = await SharedListener.bind(address, i, this.options.tls?.isTls(i) ?? false);
        this.log.info(`listening on ${describe(server)} (the workers accept)`);
      } else if (!server) {
        const fresh = net.createServer();
        await new Promise<void>((resolve, reject) => {
          fresh.once('error', (err) =>
            reject(new Error(`listen: cannot listen on ${formatAddress(address)}: ${err.message}`)),
          );
          fresh.listen({ host: address.host, port: address.port }, () => {
            // Its connections come here as bare handles (src/net/raw-accept.ts).
            acceptRaw(fresh, (connection) => this.accept(connection, i));
            resolve();
          });
        });
        server = fresh;
        this.log.info(`listening on ${describe(server)}`);
      }
      if (server instanceof net.Server) this.watchErrors(server);
      this.servers.push(server);
    }
    this.offerListeners();
  }

  private watchErrors(server: net.Server): void {
    server.removeAllListeners('error');
    server.on('error', (err) => this.log.error(`listen: ${errorMessage(err)}`));
  }

  /**
   * Gives each `accept: "workers"` entry's socket to every serving worker that lacks it (call
   * when the workers change). A serving worker with no channel for handles (adopted) cannot
   * take it: the daemon then accepts on that entry as well, as for `accept: "daemon"`.
   */
  offerListeners(): void {
    if (this.closed) return;
    let targets: FrontTarget[] | null = null;
    for (const [i, listener] of this.servers.entries()) {
      if (!(listener instanceof SharedListener)) continue;
      targets ??= this.options.targets();
      for (const target of targets) {
        if (target.child) {
          // TLS material first: messages on one channel arrive in order.
          if (this.options.tls?.isTls(i)) this.options.tls.prepare(target.child);
          listener.offer(target.child);
        } else if (!listener.daemonAccepts) {
          this.log.info(
            `listen: worker ${target.id} has no channel for the socket of ${describe(listener)}: the daemon accepts its connections too`,
          );
          const server = listener.acceptHere();
          acceptRaw(server, (connection) => this.accept(connection, i));
          this.watchErrors(server);
        }
      }
    }
  }

  /** The bound addresses ("host:port", the real port when 0 was asked for). */
  addressesBound(): string[] {
    return this.servers.map(describe);
  }

  /** The listening sockets' file descriptors, in listen-entry order (for a successor daemon). */
  listeningFds(): number[] {
    return this.servers
      .map((s) =>
        s instanceof SharedListener
          ? s.fd
          : (s as unknown as { _handle?: { fd?: unknown } | null })._handle?.fd,
      )
      .filter((fd): fd is number => typeof fd === 'number' && fd >= 0);
  }

  /** Connections handed to each worker so far, by worker id. */
  counts(): Record<string, number> {
    return Object.fromEntries(this.handedOut);
  }

  /** Connections relayed to each adopted worker so far, by worker id (workers gone left out). */
  relayed(): Record<string, number> {
    return this.relays.counts(this.options.targets().map((t) => t.id));
  }

  /** Connections handed out and relayed since this daemon started, workers gone included. */
  totalCounts(): { handedOut: number; relayed: number } {
    return { handedOut: this.handedOutTotal, relayed: this.relays.total };
  }

  /** Stalled workers (no handoff confirmed for the stall deadline), with since when (epoch ms). */
  stalled(): Record<string, number> {
    return this.window.stalled();
  }

  /** Connections accepted and not yet taken by a worker. */
  get waitingCount(): number {
    return this.waiting.size;
  }

  /**
   * Stops accepting, then lets the connections already accepted reach a worker (for at most
   * {@link CLOSE_SETTLE_MS}): destroying one the kernel handed this process would reset a
   * client whose request is already sent. Connections handed over stay with their workers;
   * relayed ones keep flowing while this process lives (the workers' drain ends them).
   */
  async close(): Promise<void> {
    this.closed = true;
    // Not server.close(callback): that waits for the relayed connections to end.
    for (const server of this.servers) server.close();
    const deadline = Date.now() + CLOSE_SETTLE_MS;
    while (this.waiting.size > 0 && Date.now() < deadline) {
      await new Promise<void>((resolve) => {
        this.settled = resolve;
        setTimeout(resolve, RETRY_MS).unref();
      });
    }
    this.settled = null;
    const left = this.dropped + this.waiting.size;
    if (left > 0) this.log.warn(`listen: closed ${left} accepted connection(s) no worker took`);
    for (const socket of this.waiting) socket.destroy();
    this.waiting.clear();
    this.queue.length = 0;
    if (this.retryTimer) clearTimeout(this.retryTimer);
    this.retryTimer = null;
  }

  private accept(connection: Accepted, entry: number): void {
    if (this.waiting.size >= this.limits.frontWaiting) {
      this.full.note();
      connection.destroy();
      return;
    }
    this.waiting.add(connection);
    const meta: FrontHandoffMeta = { entry, tls: this.options.tls?.isTls(entry) ?? false };
    const deadline = Date.now() + this.limits.frontWaitMs;
    this.queue.push({ connection, meta, deadline, extended: false, avoid: null });
    this.pump();
  }

  /**
   * Places the waiting connections, oldest first, until one finds no worker with room (then
   * none behind it would: every worker is tried for each). Runs on each accept, each settled
   * handoff, each worker gone, and every {@link RETRY_MS} while any waits (for workers to come).
   */
  private pump(): void {
    if (this.pumping) return;
    this.pumping = true;
    try {
      let targets: FrontTarget[] | null = null;
      for (let waiter = this.queue[0]; waiter; waiter = this.queue[0]) {
        if (waiter.connection.destroyed) this.leave(waiter.connection);
        else {
          targets ??= this.options.targets();
          const outcome = this.place(waiter, targets);
          if (outcome !== 'placed' && !this.giveUp(waiter, outcome)) break;
        }
        // Placing calls back no one at once (a failed handoff is said in a later tick).
        this.queue.shift();
      }
    } finally {
      this.pumping = false;
    }
    if (this.queue.length > 0) this.retryTimer ??= setTimeout(this.onRetry, RETRY_MS);
  }

  private readonly onRetry = (): void => {
    this.retryTimer = null;
    // A waiter behind a later deadline (given back once) may be past its own.
    const now = Date.now();
    for (const waiter of this.queue) waiter.avoid = null;
    for (const waiter of this.queue.slice(1))
      if (now >= waiter.deadline && this.giveUp(waiter, 'none'))
        this.queue.splice(this.queue.indexOf(waiter), 1);
    this.pump();
  };

  /** Closes a connection no worker can take, when the front closes or past its deadline. */
  private giveUp(waiter: Waiter, outcome: 'none' | 'noRoom' | 'relaysFull'): boolean {
    const { connection } = waiter;
    // A closing daemon does not wait for workers to come: close() says how many it closed.
    if (this.closed) this.dropped++;
    else if (Date.now() < waiter.deadline) return false;
    else if (outcome === 'relaysFull') this.relays.closedAtCap();
    else this.noWorker.note();
    connection.destroy();
    this.leave(connection);
    return true;
  }

  /** The targets in the order to try them for this client (src/net/routing.ts). */
  private order(connection: Accepted, targets: FrontTarget[]): FrontTarget[] {
    const sticky = this.options.sticky() ? connection.remoteAddress : undefined;
    const turn = sticky || targets.length === 0 ? 0 : this.next++;
    return targetOrder(targets, { slots: this.options.slots(), sticky, turn });
  }

  /** Gives `waiter` to the first worker in its order with room (src/net/routing.ts). */
  private place(waiter: Waiter, targets: FrontTarget[]): 'placed' | 'none' | 'noRoom' | 'relaysFull' {
    let outcome: 'none' | 'noRoom' | 'relaysFull' = 'none';
    for (const target of this.order(waiter.connection, targets)) {
      if (target.id === waiter.avoid) continue;
      if (target.child) {
        const sender = this.senderFor(target.id, target.child);
        if (!sender) continue;
        if (!this.window.hasRoom(target.id)) {
          if (outcome === 'none') outcome = 'noRoom';
          continue;
        }
        if (waiter.meta.tls) this.options.tls?.prepare(target.child);
        this.handOut(waiter, target.id, sender);
        return 'placed';
      }
      if (!this.relays.hasRoom()) {
        outcome = 'relaysFull';
        continue;
      }
      this.relays.relay(waiter.connection, target.id, target.socketPath, waiter.meta).then(
        () => this.leave(waiter.connection),
        (err: unknown) => this.givenBack(waiter, target.id, err),
      );
      return 'placed';
    }
    return outcome;
  }

  private handOut(waiter: Waiter, id: string, sender: HandoffSender): void {
    const settle = this.window.begin(id);
    sender.hand(waiter.connection.handle, waiter.meta, (err) => {
      settle(err === null);
      if (err) {
        this.givenBack(waiter, id, err);
        return;
      }
      // The sender closed this process's copy once the worker confirmed.
      waiter.connection.released();
      this.handedOut.set(id, (this.handedOut.get(id) ?? 0) + 1);
      this.handedOutTotal++;
      this.leave(waiter.connection);
      this.pump();
    });
  }

  /** A worker did not take `waiter` (it exited, maybe after a stall, or refused): it waits again, once more at most. */
  private givenBack(waiter: Waiter, id: string, err: unknown): void {
    this.log.debug(`listen: worker ${id} did not take a connection: ${errorMessage(err)}`);
    if (waiter.connection.destroyed) {
      this.leave(waiter.connection);
      return;
    }
    if (!waiter.extended) waiter.deadline = Math.max(waiter.deadline, Date.now() + this.limits.frontWaitMs);
    waiter.extended = true;
    // Not to the same worker before the next retry; first in line, as the oldest.
    waiter.avoid = id;
    this.queue.unshift(waiter);
    this.pump();
  }

  /** `connection` was taken, relayed or closed. */
  private leave(connection: Accepted): void {
    this.waiting.delete(connection);
    this.settled?.();
  }

  private senderFor(id: string, child: ChildProcess): HandoffSender | null {
    const sender = handoffSenderFor(child);
    if (sender && !this.watched.has(child)) {
      this.watched.add(child);
      // A worker gone takes its count and window with it (the totals keep its connections).
      child.once('exit', () => {
        this.handedOut.delete(id);
        this.window.forget(id);
        this.pump();
      });
    }
    return sender;
  }
}

function describe(server: net.Server | SharedListener): string {
  if (server instanceof SharedListener) return formatAddress(server.address());
  const a = server.address();
  if (a === null || typeof a === 'string') return String(a);
  return formatAddress({ host: a.address, port: a.port });
}
