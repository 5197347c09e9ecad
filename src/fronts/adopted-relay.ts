/**
 * The `listen` front's connections to adopted workers. A worker adopted from an earlier daemon
 * (after a crash or an upgrade) has no channel that carries handles: its connections are
 * relayed, bytes piped both ways to the UNIX socket the worker still listens on
 * (src/net/relay.ts: a half-closed client still gets its answer), until `nodesockd restart`
 * replaces it with a child of this daemon. The daemon ends TLS for it (it never got the
 * material). Open relays are capped ({@link ListenerLimits.relays}): at the cap the oldest
 * relay whose client has sent nothing yet is closed for a new one, never one under way; with
 * none such the new connection waits (the front says why if it waits out). One that stays
 * silent or idle is closed (src/connection-guard.ts).
 */
import type net from 'node:net';
import { ConnectionCap, closeWhenSilent } from '../connection-guard';
import type { FrontHandoffMeta } from '../ipc/worker-protocol';
import type { ListenerLimits } from '../listener-limits';
import type { Logger } from '../log';
import type { Accepted } from '../net/raw-accept';
import { relay } from '../net/relay';
import { RepeatedWarning } from '../repeated-warning';
import { lazyTls } from './lazy-tls';
import type { TlsDistributor } from './tls-material';

export class AdoptedRelays {
  /** Relayed connections open now, with the worker each goes to. */
  private readonly open = new Map<net.Socket, string>();
  private readonly perWorker = new Map<string, number>();
  private relayedTotal = 0;
  private noted = false;
  private readonly cap: ConnectionCap;
  private readonly waitedOut: RepeatedWarning;

  constructor(
    private readonly limits: ListenerLimits,
    private readonly tls: TlsDistributor | null | undefined,
    private readonly log: Logger,
  ) {
    const { relays, frontWaitMs, warnIntervalMs } = limits;
    this.cap = new ConnectionCap(relays, 'listen: relays to adopted workers', log, warnIntervalMs);
    this.waitedOut = new RepeatedWarning(
      (line) => log.warn(line),
      (n) =>
        `listen: ${relays} relays to adopted workers open (the cap), each under way; closed ${n === 1 ? 'a connection' : `${n} connections`} that waited ${frontWaitMs} ms for room`,
      warnIntervalMs,
    );
  }

  /** Whether another relay may open now: below the cap, or made so by closing a silent one. */
  hasRoom(): boolean {
    return this.cap.hasRoom();
  }

  /** A connection that waited for room at the cap is closed: said, counted. */
  closedAtCap(): void {
    this.waitedOut.note();
  }

  /** Connections relayed since this daemon started, workers gone included. */
  get total(): number {
    return this.relayedTotal;
  }

  /** Connections relayed to each adopted worker so far, by worker id; workers not in `live` and with no open relay are forgotten. */
  counts(live: readonly string[]): Record<string, number> {
    const known = new Set([...live, ...this.open.values()]);
    for (const id of this.perWorker.keys()) if (!known.has(id)) this.perWorker.delete(id);
    return Object.fromEntries(this.perWorker);
  }

  /**
   * Relays `client` to worker `id`'s own socket and counts it. Rejects, leaving `client`
   * untouched and paused, when the worker's socket does not answer.
   */
  async relay(client: Accepted, id: string, socketPath: string, meta: FrontHandoffMeta): Promise<void> {
    const piped = await relay(client, socketPath, {
      wrap: meta.tls ? (raw) => this.endTls(raw, meta.entry) : undefined,
    });
    if (!piped) throw new Error('the client went away');
    this.open.set(piped, id);
    piped.once('close', () => this.open.delete(piped));
    this.cap.add(piped);
    // The worker's own timeouts start with its first byte: a client that sends nothing, or
    // nothing more, must not hold two descriptors here for as long as it likes. Its first
    // byte makes it one under way: never closed for another.
    closeWhenSilent(piped, this.limits.relayHandshakeMs, this.limits.relayIdleMs, () =>
      this.cap.busy(piped, true),
    );
    this.perWorker.set(id, (this.perWorker.get(id) ?? 0) + 1);
    this.relayedTotal++;
    if (!this.noted) {
      this.noted = true;
      this.log.warn(
        `listen: relaying connections to adopted worker(s) over their sockets; they see the daemon, not the client's address, until \`nodesockd restart\` replaces them`,
      );
    }
  }

  /** An adopted worker never got the TLS material: the daemon ends TLS for it. */
  private endTls(client: net.Socket, entry: number): net.Socket {
    const context = this.tls?.secureContext(entry);
    if (!context) return client;
    const tls = new (lazyTls().TLSSocket)(client, {
      isServer: true,
      secureContext: context,
      ALPNProtocols: ['http/1.1'],
    });
    tls.once('close', () => client.destroy());
    return tls;
  }
}
