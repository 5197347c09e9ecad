/**
 * How long and how many: the caps and timeouts of every listener the daemon serves (the control
 * socket, `metrics`, the dev server, the `listen` front and its relay). Each cap is a share of
 * the process's open-file limit, so that no one listener, flooded, can take the descriptors the
 * others (and the workers' pipes) need. Tests shorten them with {@link TEST_LIMITS_ENV}.
 */
import fs from 'node:fs';

export interface ListenerLimits {
  /** A control connection that has not sent a complete first frame is closed after this. */
  controlHandshakeMs: number;
  /** Control connections that have not sent their first frame yet; at the cap the oldest is closed. */
  controlUnidentified: number;
  /** Control connections that have (workers' links excluded); at the cap the oldest idle one is closed. */
  controlIdentified: number;
  /** A `metrics` connection that is idle (no request under way) is closed after this. */
  metricsIdleMs: number;
  /** Open `metrics` connections; at the cap the oldest idle one is closed. */
  metricsConnections: number;
  /** A relayed connection (dev server, adopted workers) that sent nothing yet is closed after this. */
  relayHandshakeMs: number;
  /** A relayed connection with no byte either way is closed after this. */
  relayIdleMs: number;
  /** Open dev-server connections; at the cap the oldest that sent nothing is closed. */
  devConnections: number;
  /** Open relayed connections to adopted workers; at the cap a connection waits for room. */
  relays: number;
  /** `listen` connections accepted and not yet taken by a worker; beyond it a new one is closed. */
  frontWaiting: number;
  /** How long a `listen` connection waits for a worker with room before it is closed. */
  frontWaitMs: number;
  /** A worker that has not confirmed a handed connection for this long is stalled: it is replaced. */
  handoffStallMs: number;
  /**
   * Connections moved by replaced workers (the handover) that the daemon holds at once, each a
   * descriptor until the successor confirms; beyond it a move is refused at once (it closes the
   * old way).
   */
  handoverMoves: number;
  /** A repeated warning (refused, closed connections) is logged at most once per this, with a count. */
  warnIntervalMs: number;
}

/** Test only: `key=value,…` overriding any {@link ListenerLimits} entry (ms or a count). */
export const TEST_LIMITS_ENV = 'NODESOCKD_TEST_LIMITS';

/** The soft limit on open files (RLIMIT_NOFILE) from /proc, or the common 1024 when unreadable. */
export function openFileLimit(): number {
  try {
    const line = fs.readFileSync('/proc/self/limits', 'utf8').match(/^Max open files\s+(\d+|unlimited)/m);
    if (line?.[1] === 'unlimited') return Number.MAX_SAFE_INTEGER;
    if (line?.[1]) return Number(line[1]);
  } catch {
    // Not Linux: assume the common default.
  }
  return 1024;
}

/** The limits for a process allowed `fds` open files, with the test override from `env` applied. */
export function listenerLimits(fds = openFileLimit(), env: NodeJS.ProcessEnv = process.env): ListenerLimits {
  // A share of the descriptors, never below a few; a connection relayed costs two.
  const share = (fraction: number, most: number) => Math.max(4, Math.min(most, Math.floor(fds * fraction)));
  const limits: ListenerLimits = {
    controlHandshakeMs: 10_000,
    controlUnidentified: share(1 / 16, 64),
    controlIdentified: share(1 / 16, 256),
    metricsIdleMs: 10_000,
    metricsConnections: share(1 / 16, 64),
    relayHandshakeMs: 15_000,
    relayIdleMs: 120_000,
    devConnections: share(1 / 16, 1024),
    relays: share(1 / 16, 1024),
    frontWaiting: share(1 / 2, 4096),
    frontWaitMs: 5000,
    handoffStallMs: 10_000,
    // A successor confirms in milliseconds: what is in flight at once is the old workers' idle
    // connections (nginx keeps 16 per nginx process), far fewer than 1/8 of the descriptors.
    handoverMoves: share(1 / 8, 1024),
    warnIntervalMs: 10_000,
  };
  for (const part of (env[TEST_LIMITS_ENV] ?? '').split(',')) {
    const [key, value] = part.split('=');
    if (key && key in limits && Number(value) > 0) limits[key as keyof ListenerLimits] = Number(value);
  }
  return limits;
}

let current: ListenerLimits | null = null;

/** This process's limits, computed once. */
export function limits(): ListenerLimits {
  current ??= listenerLimits();
  return current;
}
