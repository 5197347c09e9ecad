import type { Publisher } from '../publisher';
import type { SlotTable } from './slots';

/**
 * The pool's socket naming: the one the slots publish with, and one a reload staged for the
 * next generation (new workers' sockets are named by it at once).
 */
export class SocketNaming {
  private staged: Publisher | null = null;

  constructor(private readonly slots: SlotTable) {}

  /** Where a new worker's socket goes: the staged naming's path, else the current one's. */
  uniquePath(id: string): string {
    return (this.staged ?? this.slots.publisher).uniquePath(id);
  }

  /** A reload renamed the sockets: used from the next generation on. */
  stage(next: Publisher): void {
    this.staged = next;
  }

  /** The staged naming, cleared: a restart publishes its generation with it, or drops it. */
  take(): Publisher | null {
    const staged = this.staged;
    this.staged = null;
    return staged;
  }

  /** The slots switch to the staged naming now, if one is staged (a rename without a restart). */
  apply(): void {
    const staged = this.take();
    if (staged) this.slots.switchPublisher(staged);
  }
}
