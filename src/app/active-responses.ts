/**
 * The responses a guarded server has in flight (server-guard.ts). A `Set` of them made the
 * worker's old generation grow under steady load: behind nginx (2 workers, 64 kept-alive
 * upstream connections) 18 mark-compact collections instead of 6 without the guard, each a
 * pause of 1–7 ms, which showed as a p99 20–38% above the same app run alone. This keeps them
 * in an array instead, each response holding its own index: adding and removing one allocate
 * nothing, and the collections are as many as without the guard.
 */
/** An item as the list sees it: its index under the list's own symbol. */
type Indexed = { [key: symbol]: number | undefined };

export class ActiveResponses<T extends object> {
  /** The property each item holds its index in: one per list, so an item may be in several. */
  readonly #index = Symbol('nodesockd.activeIndex');
  readonly #items: T[] = [];

  get size(): number {
    return this.#items.length;
  }

  add(item: T): void {
    if (this.has(item)) return;
    (item as Indexed)[this.#index] = this.#items.length;
    this.#items.push(item);
  }

  /** Removes `item` (the last one takes its place); false when it was not there. */
  delete(item: T): boolean {
    if (!this.has(item)) return false;
    const index = (item as Indexed)[this.#index]!;
    const last = this.#items.pop()!;
    if (last !== item) {
      this.#items[index] = last;
      (last as Indexed)[this.#index] = index;
    }
    (item as Indexed)[this.#index] = undefined;
    return true;
  }

  has(item: T): boolean {
    const index = (item as Indexed)[this.#index];
    return index !== undefined && this.#items[index] === item;
  }

  /** A copy: what the caller does to the items may remove them. */
  snapshot(): T[] {
    return [...this.#items];
  }
}
