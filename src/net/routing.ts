/**
 * Which worker takes a connection: pure choosers, no timers and no I/O. The daemon's `listen`
 * front tries its slots round robin, or from the client's slot on with `sticky`
 * ({@link targetOrder}, {@link stickySlot}); the pool library takes an idle worker, starts one,
 * or takes the least-loaded ({@link chooseWorker}).
 */

/** The address with IPv4-mapped IPv6 written as IPv4, so one client hashes the same both ways. */
export function plainAddress(address: string): string {
  return address.toLowerCase().replace(/^::ffff:(\d+\.\d+\.\d+\.\d+)$/, '$1');
}

/** The slot a client address is routed to with `sticky` (FNV-1a of the address). */
export function stickySlot(address: string, slots: number): number {
  let hash = 0x811c9dc5;
  for (const ch of plainAddress(address)) {
    hash ^= ch.charCodeAt(0);
    hash = Math.imul(hash, 0x01000193) >>> 0;
  }
  return hash % Math.max(1, slots);
}

/**
 * The order in which the `listen` front tries its serving workers for one connection. With a
 * `sticky` client address: the worker of the client's slot, then those of the slots after it,
 * wrapping round (a slot with no serving worker is skipped). Otherwise round robin: from the
 * `turn`th worker on (the caller counts turns), wrapping round.
 */
export function targetOrder<T extends { slot: number }>(
  targets: readonly T[],
  o: { slots: number; sticky?: string | undefined; turn: number },
): T[] {
  if (targets.length === 0) return [];
  if (o.sticky) {
    const slots = Math.max(1, o.slots);
    const wanted = stickySlot(o.sticky, slots);
    const after = (t: T) => (((t.slot - wanted) % slots) + slots) % slots;
    return [...targets].sort((a, b) => after(a) - after(b));
  }
  const start = o.turn % targets.length;
  return [...targets.slice(start), ...targets.slice(0, start)];
}

export interface Candidate {
  connections: number;
  ready: boolean;
}

/**
 * The least-loaded worker (ready ones before starting ones at equal load; earlier in the
 * list wins a tie, so a caller that moves the chosen one to the end of its equals rotates).
 */
export function leastLoaded<T extends Candidate>(workers: readonly T[]): T | undefined {
  let best: T | undefined;
  for (const w of workers) {
    if (
      best === undefined ||
      w.connections < best.connections ||
      (w.connections === best.connections && w.ready && !best.ready)
    )
      best = w;
  }
  return best;
}

export type Choice<T> = { kind: 'worker'; worker: T } | { kind: 'spawn' } | { kind: 'wait' };

/**
 * Socketnaut's rule, bounded: an idle worker if there is one; else a new worker while the pool
 * is below its maximum and fewer than `maxSpawning` are starting; else the least-loaded.
 */
export function chooseWorker<T extends Candidate>(
  workers: readonly T[],
  o: { max: number; starting: number; maxSpawning: number; maySpawn: boolean },
): Choice<T> {
  const best = leastLoaded(workers);
  if (best && best.connections === 0) return { kind: 'worker', worker: best };
  if (o.maySpawn && workers.length < o.max && o.starting < o.maxSpawning) return { kind: 'spawn' };
  if (best) return { kind: 'worker', worker: best };
  return { kind: 'wait' };
}
