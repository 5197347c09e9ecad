/**
 * A worker's lifecycle, as one table. `WorkerHandle.transition()` is the only place that
 * changes a worker's state, and it refuses anything this table does not allow.
 *
 *   starting ──online──▶ online ─────────────┐
 *      │    └─online──▶ suspended ─resume─▶ online
 *      │                    │                 │
 *      └──────────────▶ draining ◀────────────┘
 *   (any state) ──process exit──▶ exited
 */
export type WorkerState = 'starting' | 'suspended' | 'online' | 'draining' | 'exited';

const allowed: Record<WorkerState, readonly WorkerState[]> = {
  starting: ['online', 'suspended', 'draining', 'exited'],
  suspended: ['online', 'draining', 'exited'],
  online: ['draining', 'exited'],
  draining: ['exited'],
  exited: [],
};

export function canTransition(from: WorkerState, to: WorkerState): boolean {
  return allowed[from].includes(to);
}

/** States in which the worker accepts connections on its socket. */
export function isServing(state: WorkerState): boolean {
  return state === 'online' || state === 'suspended';
}
