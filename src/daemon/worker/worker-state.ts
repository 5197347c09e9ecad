/**
 * A worker's lifecycle as one pure function. `ManagedWorker` holds the current `Lifecycle`
 * and replaces it only through `advance()`; an event the table does not allow is a bug in
 * the caller and throws.
 *
 *   starting ──online──▶ online ─────────────┐
 *      │    └─online──▶ suspended ─resume─▶ online
 *      │                    │                 │
 *      └──────drain────▶ draining ◀───drain───┘
 *   (any state but exited) ──process exit──▶ exited
 *
 * Each state carries the facts that only exist in it: when it came online, why it is
 * draining, how it exited.
 */
import type { WorkerState } from '../../ipc/protocol';

/** What a worker does for the pool (serving, standby, draining, starting); derived from the slot table and the standby pool. */
export type { WorkerRole } from '../../ipc/protocol';
/** The states (as replies name them, ipc/protocol.ts). */
export type { WorkerState };

export interface ExitInfo {
  code: number | null;
  signal: NodeJS.Signals | null;
}

/** Why a worker was asked to stop. */
export type DrainReason = 'replaced' | 'stopped' | 'aborted' | 'broken' | 'surplus';

export type Lifecycle =
  | { readonly state: 'starting'; readonly since: number }
  | { readonly state: 'online' | 'suspended'; readonly since: number; readonly onlineAt: number }
  | {
      readonly state: 'draining';
      readonly since: number;
      readonly onlineAt: number | null;
      readonly reason: DrainReason;
    }
  | {
      readonly state: 'exited';
      readonly since: number;
      readonly onlineAt: number | null;
      readonly exit: ExitInfo;
    };

export type LifecycleEvent =
  | { type: 'online'; suspended: boolean }
  | { type: 'resume' }
  | { type: 'drain'; reason: DrainReason }
  | { type: 'exit'; exit: ExitInfo };

export class IllegalTransitionError extends Error {
  constructor(from: WorkerState, event: LifecycleEvent['type']) {
    super(`illegal worker transition: '${event}' in state '${from}'`);
  }
}

/** The lifecycle's one table: the states each event may leave from. */
const LEAVES_FROM: Record<LifecycleEvent['type'], readonly WorkerState[]> = {
  online: ['starting'],
  resume: ['suspended'],
  drain: ['starting', 'online', 'suspended'],
  exit: ['starting', 'online', 'suspended', 'draining'],
};

/** Whether `event` is legal in `state` (guards ask this; advance() throws when it is not). */
export function can(state: WorkerState, event: LifecycleEvent['type']): boolean {
  return LEAVES_FROM[event].includes(state);
}

function onlineAtOf(l: Lifecycle): number | null {
  return l.state === 'starting' ? null : l.onlineAt;
}

/** The next lifecycle after `event` at time `at`; throws IllegalTransitionError. */
export function advance(current: Lifecycle, event: LifecycleEvent, at: number): Lifecycle {
  if (!can(current.state, event.type)) throw new IllegalTransitionError(current.state, event.type);
  switch (event.type) {
    case 'online':
      return { state: event.suspended ? 'suspended' : 'online', since: at, onlineAt: at };
    case 'resume':
      // Only a suspended worker resumes, and it has been online.
      return { state: 'online', since: at, onlineAt: onlineAtOf(current) ?? at };
    case 'drain':
      return { state: 'draining', since: at, onlineAt: onlineAtOf(current), reason: event.reason };
    case 'exit':
      return { state: 'exited', since: at, onlineAt: onlineAtOf(current), exit: event.exit };
  }
}

/** States in which the worker accepts connections on its socket. */
export function isServing(state: WorkerState): boolean {
  return state === 'online' || state === 'suspended';
}

export function describeExit(exit: ExitInfo): string {
  if (exit.signal) return `killed by ${exit.signal}`;
  // An adopted worker is not our child: how it ended cannot be known.
  return exit.code === null ? 'exited (status unknown)' : `exited with code ${exit.code}`;
}
