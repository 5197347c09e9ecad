/**
 * How many workers the pool runs, and when: the floor (`minWorkers`), kept across crashes;
 * a bounded scale-up (one worker first on a cold start, then at most `maxSpawning` starting
 * at once); idle scale-down (one worker per check, idle for the grace, not right after a
 * scale-up); and the crash backoff. All time comes from the clock it is given.
 */
import type { Clock, Timer } from '../supervise/clock.js';
import { RestartBackoff } from './policy.js';
import type { WorkerState } from './worker-agent.js';

/** What the scaler reads of a worker. */
export interface ScaledWorker {
  readonly id: number;
  readonly state: WorkerState;
  readonly connections: number;
  readonly idleSince: number;
}

export interface ScalerSettings {
  minWorkers: number;
  maxSpawning: number;
  /** How long a worker must have been idle before scale-down stops it. */
  idleTimeout: number;
  /** How often idle workers are looked at (none when unset or 0). */
  checkInterval: number | undefined;
  restartDelay: { initial: number; max: number };
}

export interface ScalerHost<T extends ScaledWorker> {
  /** The pool's workers that are not draining or exited. */
  workers(): readonly T[];
  /** Connections that wait because no worker runs. */
  waiting(): number;
  /** Starts one worker (it shows in `workers()` at once). */
  spawn(): T;
  /** Asks `worker` to drain (scale-down). */
  drain(worker: T, reason: string): void;
  /** Sends the waiting connections to a worker, if one runs now. */
  flush(): void;
}

export class Scaler<T extends ScaledWorker> {
  /** The floor; shutdown lowers it to 0. */
  minWorkers: number;
  readonly #settings: ScalerSettings;
  readonly #host: ScalerHost<T>;
  readonly #clock: Clock;
  readonly #backoff: RestartBackoff;
  #nextSpawnAt = 0;
  #lastScaleUp = 0;
  #spawnTimer: Timer | null = null;
  #checkTimer: Timer | null = null;
  #stopped = false;

  constructor(settings: ScalerSettings, host: ScalerHost<T>, clock: Clock) {
    this.#settings = settings;
    this.minWorkers = settings.minWorkers;
    this.#host = host;
    this.#clock = clock;
    this.#backoff = new RestartBackoff(settings.restartDelay.initial, settings.restartDelay.max);
  }

  /** Starts the floor and the idle checks. */
  start(): void {
    this.fill();
    this.#armCheck();
  }

  /** No more starts, checks or scale-down (shutdown). */
  stop(): void {
    this.#stopped = true;
    this.minWorkers = 0;
    this.#clock.clearTimeout(this.#spawnTimer);
    this.#clock.clearTimeout(this.#checkTimer);
    this.#spawnTimer = this.#checkTimer = null;
  }

  /** When the backoff lets the next worker start. */
  get nextSpawnAt(): number {
    return this.#nextSpawnAt;
  }

  /** Whether a worker may start now (the backoff has passed, the pool is not stopping). */
  maySpawn(): boolean {
    return !this.#stopped && this.#clock.now() >= this.#nextSpawnAt;
  }

  /** A connection found no idle worker and may start one: starts it, and holds scale-down back. */
  scaleUp(): T {
    this.#lastScaleUp = this.#clock.now();
    return this.#host.spawn();
  }

  /**
   * A worker ended without being asked to, after `ranForMs` of readiness (-1: it never got
   * ready). Returns the delay before the next start.
   */
  crashed(ranForMs: number): number {
    this.#backoff.recordFailure(ranForMs);
    const delay = this.#backoff.delayMs();
    this.#nextSpawnAt = this.#clock.now() + delay;
    return delay;
  }

  /** Starts workers towards the floor, or for waiting connections, when the backoff allows. */
  fill(): void {
    if (this.#stopped) return;
    if (this.#nextSpawnAt > this.#clock.now()) {
      this.scheduleSpawn();
      return;
    }
    const live = this.#host.workers();
    let count = live.length;
    let starting = live.filter((w) => w.state === 'starting').length;
    // Cold start: one worker first, so the first client waits for one start and not for the
    // whole floor (on a few cores, 32 threads starting at once are all slow); then at most
    // maxSpawning at a time, each online worker making room for the next.
    const limit = live.some((w) => w.state === 'ready') ? this.#settings.maxSpawning : 1;
    for (; count < this.minWorkers && starting < limit; count++, starting++) this.#host.spawn();
    if (this.#host.waiting() > 0 && this.#host.workers().length === 0) this.#host.spawn();
    this.#host.flush();
  }

  /** `fill()` again once the backoff has passed. */
  scheduleSpawn(): void {
    if (this.#spawnTimer || this.#stopped) return;
    const wait = Math.max(0, this.#nextSpawnAt - this.#clock.now());
    this.#spawnTimer = this.#clock.setTimeout(() => {
      this.#spawnTimer = null;
      this.fill();
    }, wait);
    this.#spawnTimer.unref();
  }

  #armCheck(): void {
    const every = this.#settings.checkInterval;
    if (!every || this.#stopped) return;
    this.#checkTimer = this.#clock.setTimeout(() => {
      this.reap();
      this.#armCheck();
    }, every);
    this.#checkTimer.unref();
  }

  /** Scale-down: at most one idle worker per check, idle for the grace, and not right after a scale-up. */
  reap(): void {
    if (this.#stopped) return;
    const now = this.#clock.now();
    const idleTimeout = this.#settings.idleTimeout;
    const live = this.#host.workers().filter((w) => w.state === 'ready' || w.state === 'starting');
    if (live.length <= this.minWorkers || now - this.#lastScaleUp < idleTimeout) return;
    let victim: T | undefined;
    for (const w of live) {
      if (w.state !== 'ready' || w.connections !== 0 || now - w.idleSince < idleTimeout) continue;
      if (!victim || w.idleSince < victim.idleSince) victim = w;
    }
    if (victim) this.#host.drain(victim, `idle for ${now - victim.idleSince} ms`);
  }
}
