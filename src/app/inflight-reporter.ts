import type { Nodesockd } from './api.js';
import { sendToDaemon } from './channel.js';

/** The daemon only needs a trend while draining; one message per 100 ms keeps IPC quiet under load. */
const REPORT_INTERVAL_MS = 100;

/** Throttled `nodesockd:inflight` reports: leading edge, then at most one per interval. */
export class InflightReporter {
  #enabled = false;
  #current = 0;
  #lastSent = -1;
  #timer: NodeJS.Timeout | undefined;

  constructor(private readonly worker: Nodesockd) {}

  start(count: number): void {
    this.#enabled = this.worker.managed;
    this.update(count);
  }

  update(count: number): void {
    this.#current = count;
    if (!this.#enabled || this.#timer !== undefined) return;
    this.#send();
  }

  /** Sends the last count if it was not sent yet; `done` runs once it is written. */
  flush(done: () => void): void {
    clearTimeout(this.#timer);
    this.#timer = undefined;
    if (!this.#enabled || this.#current === this.#lastSent) {
      done();
      return;
    }
    this.#lastSent = this.#current;
    sendToDaemon({ type: 'nodesockd:inflight', count: this.#current }, done);
  }

  #send(): void {
    if (this.#current !== this.#lastSent) {
      this.#lastSent = this.#current;
      this.worker.reportInflight(this.#current);
    }
    this.#timer = setTimeout(() => {
      this.#timer = undefined;
      if (this.#current !== this.#lastSent) this.#send();
    }, REPORT_INTERVAL_MS);
    // A pending report must not delay the exit of a drained worker.
    this.#timer.unref();
  }
}
