/**
 * The `listen` front's connections to adopted workers. A worker adopted from an earlier daemon
 * (after a crash or an upgrade) has no channel that carries handles: its connections are
 * relayed, bytes piped both ways to the UNIX socket the worker still listens on
 * (src/net/relay.ts: a half-closed client still gets its answer), until `nodesockd restart`
 * replaces it with a child of this daemon. The daemon ends TLS for it (it never got the
 * material). Open relays are capped ({@link ListenerLimits.relays}); one that stays silent or
 * idle is closed (src/connection-guard.ts).
 */
import type net from 'node:net';
import { closeWhenSilent } from '../connection-guard';
import type { FrontHandoffMeta } from '../ipc/worker-protocol';
import type { ListenerLimits } from '../listener-limits';
import type { Logger } from '../log';
import { relay } from '../net/relay';
import { lazyTls } from './lazy-tls';
import type { Accepted } from './raw-accept';
import type { TlsDistributor } from './tls-material';

export class AdoptedRelays {
  /** Relayed connections open now, with the worker each goes to. */
  private readonly open = new Map<net.Socket, string>();
  private readonly perWorker = new Map<string, number>();
  private relayedTotal = 0;
  private noted = false;

  constructor(
    private readonly limits: ListenerLimits,
    private readonly tls: TlsDistributor | null | undefined,
    private readonly log: Logger,
  ) {}

  /** Whether another relay may open now (below the cap). */
  hasRoom(): boolean {
    return this.open.size < this.limits.relays;
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
    // The worker's own timeouts start with its first byte: a client that sends nothing, or
    // nothing more, must not hold two descriptors here for as long as it likes.
    closeWhenSilent(piped, this.limits.relayHandshakeMs, this.limits.relayIdleMs);
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
