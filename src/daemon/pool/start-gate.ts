/**
 * Whether the pool may start workers: stop() and detach() abort the starts in flight (they
 * give up now, not after an onlineTimeout) until the stop has drained; close() for good, so
 * nothing queued meanwhile or later spawns a worker that would outlive the daemon.
 */
export class StartGate {
  /** Aborted by stop() and detach(); renewed once a stop has drained. */
  private lifetime = new AbortController();
  /** Aborted for good by close(). */
  private readonly closing = new AbortController();

  /** The signals a start gives up on, with the caller's own (a restart's) if any. */
  signals(abort?: AbortSignal): AbortSignal[] {
    return [this.lifetime.signal, this.closing.signal, ...(abort ? [abort] : [])];
  }

  /** Starts in flight give up, and no start may spawn until reopen(). */
  abortStarts(): void {
    this.lifetime.abort();
  }

  /** A stop has drained: later commands may start workers again (not after close()). */
  reopen(): void {
    if (!this.closing.signal.aborted) this.lifetime = new AbortController();
  }

  /** No start ever again (the daemon shutting down). */
  close(): void {
    this.closing.abort();
  }

  /** Throws the one-line refusal of a command that would start workers after close(). */
  refuseWhenClosed(what: string): void {
    if (this.closing.signal.aborted) throw new Error(`cannot ${what}: the daemon is shutting down`);
  }
}
