/**
 * The daemon's part of the connection handover (docs/lifecycle.md#connection-handover): a
 * replaced worker is told its connections have a successor ({@link MSG_HANDOVER_START}, before
 * `'shutdown'`), then sends each kept-alive connection's descriptor here; the daemon passes it
 * on, unread, to the worker that now serves the same slot (net/handoff.ts) and tells the old
 * worker whether it was taken. Only children of this daemon take part: an adopted worker's
 * channel carries no descriptors.
 *
 * Who gives up first is ordered so that one connection never has two owners: the successor
 * refuses a descriptor past its deadline ({@link TAKE_DEADLINE_MS}), the daemon answers "not
 * taken" only after waiting longer ({@link CONFIRM_WAIT_MS}), and the old worker takes the
 * connection back only after waiting longer still (app/handover-channel.ts). When the daemon
 * gives up, it forgets the send and closes its copy: a confirmation after that finds nothing.
 * Moves held at once are capped ({@link ListenerLimits.handoverMoves}); beyond the cap a move is
 * refused at once, and the old worker keeps the connection.
 */
import type { ChildProcess } from 'node:child_process';
import net from 'node:net';
import {
  type HandoverMoved,
  type HandoverStart,
  isHandoverMove,
  isHandoverReport,
  type MovedHandoffMeta,
  MSG_HANDOVER_MOVED,
  MSG_HANDOVER_START,
} from '../../ipc/worker-protocol';
import { type ListenerLimits, limits } from '../../listener-limits';
import { errorMessage, type Logger } from '../../log';
import { handoffSenderFor } from '../../net/handoff';
import { RepeatedWarning } from '../../repeated-warning';
import type { ManagedWorker } from '../worker/managed-worker';

const TAKE_DEADLINE_MS = 3000;
const CONFIRM_WAIT_MS = 4500;

/** How the connections of one or more replaced workers went. */
export interface HandoverCounts {
  /** Now served by the successor. */
  moved: number;
  /** Had a request in flight: each moves as its response ends. */
  busy: number;
  /** Close the old way (`Connection: close`): could not move. */
  drained: number;
}

interface RawDescriptor {
  close(): void;
}

export interface HandoverDeps {
  /** The worker that serves `old`'s slot now, if it is not `old`. */
  successorOf(old: ManagedWorker): ManagedWorker | null;
  log: Logger;
}

export class ConnectionHandover {
  readonly #deps: HandoverDeps;
  /** Connections moved since the daemon started, and moves that failed (for status and metrics). */
  readonly totals = { moved: 0, failed: 0 };
  /** Moved descriptors held now, each waiting for its successor's answer. */
  #inFlight = 0;
  readonly #cap: number;
  readonly #full: RepeatedWarning;

  constructor(deps: HandoverDeps, caps: ListenerLimits = limits()) {
    this.#deps = deps;
    this.#cap = caps.handoverMoves;
    this.#full = new RepeatedWarning(
      (line) => deps.log.warn(line),
      (n) =>
        `handover: ${this.#cap} moved connections already wait for a successor (the cap); refused ${n === 1 ? 'a move' : `${n} moves`} (those connections close the old way)`,
      caps.warnIntervalMs,
    );
  }

  /**
   * Starts moving `old`'s connections to its successor, if it has one that is a child of this
   * daemon. Resolves with the old worker's report once its idle connections are settled; null
   * when there is no handover, or no report within `reportWaitMs`. Call before `old` drains.
   */
  begin(old: ManagedWorker, reportWaitMs: number): Promise<HandoverCounts | null> {
    const child = old.childProcess;
    const successor = this.#deps.successorOf(old);
    if (child === null || !child.connected || successor?.childProcess == null) return Promise.resolve(null);
    return new Promise((resolve) => {
      let settled = false;
      const done = (counts: HandoverCounts | null): void => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        resolve(counts);
      };
      const onInternal = (message: unknown, handle: unknown): void => {
        if (isHandoverMove(message)) this.#relay(old, child, message.id, handle as RawDescriptor | undefined);
        // Node shows every descriptor's envelope first; only one without its descriptor is ours to answer.
        else if ((handle === null || handle === undefined) && isLostDescriptor(message))
          this.#relay(old, child, message.msg.id, undefined);
        else if (isHandoverReport(message)) {
          done({ moved: message.moved, busy: message.busy, drained: message.drained });
        }
      };
      // Kept for the worker's whole life: busy connections move after the report.
      old.acceptsMoves = true;
      child.on('internalMessage', onInternal);
      child.once('exit', () => {
        child.off('internalMessage', onInternal);
        done(null);
      });
      const timer = setTimeout(() => done(null), reportWaitMs);
      timer.unref();
      if (!old.send({ cmd: MSG_HANDOVER_START } satisfies HandoverStart)) done(null);
    });
  }

  #relay(old: ManagedWorker, child: ChildProcess, id: number, handle: RawDescriptor | undefined): void {
    const answer = (ok: boolean, error?: string): void => {
      if (ok) this.totals.moved++;
      else this.totals.failed++;
      if (!ok) this.#deps.log.debug(`worker ${old.id}: a connection stays with it: ${error}`);
      const message: HandoverMoved = { cmd: MSG_HANDOVER_MOVED, id, ok, ...(error ? { error } : {}) };
      try {
        if (child.connected) child.send(message, (err) => err && undefined);
      } catch {
        // The old worker is gone; so is its copy of the connection.
      }
    };
    // A worker's preload sends the bare descriptor; a socket object (Node made it a net.Socket
    // here, already reading) is not a connection at a request boundary: closed, refused.
    if (handle instanceof net.Socket) {
      handle.destroy();
      answer(false, 'a socket object was sent, not a bare descriptor');
      return;
    }
    // A descriptor the daemon could not receive (at its limit: EMFILE) arrives as nothing.
    if (handle === undefined || handle === null || typeof handle.close !== 'function') {
      answer(false, 'no descriptor arrived (is the daemon at its open-file limit?)');
      return;
    }
    const successor = this.#deps.successorOf(old);
    const sender = successor?.childProcess ? handoffSenderFor(successor.childProcess) : null;
    if (
      successor === null ||
      sender === null ||
      successor.state === 'draining' ||
      successor.state === 'exited'
    ) {
      handle.close();
      answer(false, 'no successor takes connections');
      return;
    }
    if (this.#inFlight >= this.#cap) {
      this.#full.note();
      handle.close();
      answer(false, `${this.#cap} moves already wait for a successor`);
      return;
    }
    const meta: MovedHandoffMeta = { moved: true, deadline: Date.now() + TAKE_DEADLINE_MS };
    this.#deps.log.debug(`passing a connection of worker ${old.id} to worker ${successor.id}`);
    // Past the wait the send is abandoned (rejected) and this copy closed.
    const giveUp = new AbortController();
    const wait = setTimeout(
      () => giveUp.abort(`worker ${successor.id} did not confirm within ${CONFIRM_WAIT_MS} ms`),
      CONFIRM_WAIT_MS,
    );
    wait.unref();
    this.#inFlight++;
    sender.send(handle, meta, giveUp.signal).then(
      () => {
        this.#inFlight--;
        clearTimeout(wait);
        answer(true);
      },
      (err: unknown) => {
        this.#inFlight--;
        clearTimeout(wait);
        handle.close();
        answer(
          false,
          giveUp.signal.aborted
            ? String(giveUp.signal.reason)
            : `worker ${successor.id} did not take it: ${errorMessage(err)}`,
        );
      },
    );
  }
}

/**
 * A move whose descriptor did not arrive (the daemon at its open-file limit: the kernel drops
 * it, MSG_CTRUNC): Node shows the bare envelope and NACKs it; sent with keepOpen, it is not
 * sent again, so the old worker can be told at once to keep the connection.
 */
function isLostDescriptor(message: unknown): message is { msg: { id: number } } {
  if (typeof message !== 'object' || message === null) return false;
  const m = message as { cmd?: unknown; msg?: unknown };
  return m.cmd === 'NODE_HANDLE' && isHandoverMove(m.msg);
}

/** Adds reports up (null ones count as nothing). */
export function sumCounts(reports: (HandoverCounts | null)[]): HandoverCounts {
  const total: HandoverCounts = { moved: 0, busy: 0, drained: 0 };
  for (const r of reports) {
    if (r === null) continue;
    total.moved += r.moved;
    total.busy += r.busy;
    total.drained += r.drained;
  }
  return total;
}
