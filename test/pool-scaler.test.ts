/**
 * The pool's scaler (src/socketnaut/scaler.ts), in-process on a fake clock: the floor and its cold
 * start, the crash backoff to the millisecond, idle scale-down, and a stopped scaler. The
 * real-process pool tests check the same rules against real workers by counts.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { type ScaledWorker, Scaler, type ScalerSettings } from '../src/socketnaut/scaler.js';
import type { WorkerState } from '../src/socketnaut/worker-agent.js';
import { FakeClock } from './helpers/fake-pool.js';

interface FakeWorker extends ScaledWorker {
  state: WorkerState;
  connections: number;
  idleSince: number;
}

/** A scaler over plain records: `spawned` holds each start's time, `drained` each scale-down. */
function setup(settings: Partial<ScalerSettings>) {
  const clock = new FakeClock();
  const t0 = clock.now();
  const workers: FakeWorker[] = [];
  const spawned: number[] = [];
  const drained: number[] = [];
  let waiting = 0;
  let nextId = 1;
  const scaler = new Scaler<FakeWorker>(
    {
      minWorkers: 0,
      maxSpawning: 4,
      idleTimeout: 0,
      checkInterval: undefined,
      restartDelay: { initial: 100, max: 10_000 },
      ...settings,
    },
    {
      workers: () => workers,
      waiting: () => waiting,
      spawn: () => {
        const w: FakeWorker = { id: nextId++, state: 'starting', connections: 0, idleSince: clock.now() };
        workers.push(w);
        spawned.push(clock.now() - t0);
        return w;
      },
      drain: (w) => {
        w.state = 'draining';
        workers.splice(workers.indexOf(w), 1);
        drained.push(w.id);
      },
      flush: () => {},
    },
    clock,
  );
  return {
    clock,
    t0,
    workers,
    spawned,
    drained,
    scaler,
    setWaiting: (n: number) => {
      waiting = n;
    },
    /** `w` listens now. */
    online: (w: FakeWorker) => {
      w.state = 'ready';
      w.idleSince = clock.now();
      scaler.fill();
    },
    /** `w` exits unasked after `ranFor` ms of readiness (-1: never ready). */
    crash: (w: FakeWorker, ranFor: number) => {
      w.state = 'exited';
      workers.splice(workers.indexOf(w), 1);
      const delay = scaler.crashed(ranFor);
      scaler.fill();
      return delay;
    },
  };
}

describe('the floor', () => {
  test('a cold start begins with one worker, then at most maxSpawning start at once', () => {
    const s = setup({ minWorkers: 6, maxSpawning: 2 });
    s.scaler.start();
    assert.equal(s.workers.length, 1, 'one worker first');
    s.online(s.workers[0]);
    assert.deepEqual(
      s.workers.map((w) => w.state),
      ['ready', 'starting', 'starting'],
    );
    s.online(s.workers[1]);
    assert.equal(s.workers.length, 4, 'each online worker makes room for the next');
    s.online(s.workers[2]);
    s.online(s.workers[3]);
    assert.equal(s.workers.length, 6);
    s.online(s.workers[4]);
    s.online(s.workers[5]);
    assert.equal(s.workers.length, 6, 'never above the floor by itself');
    assert.deepEqual(s.spawned, [0, 0, 0, 0, 0, 0]);
  });

  test('a connection that waits with no worker starts one, even with a floor of 0', () => {
    const s = setup({ minWorkers: 0 });
    s.scaler.start();
    assert.equal(s.workers.length, 0);
    s.setWaiting(1);
    s.scaler.fill();
    assert.equal(s.workers.length, 1);
  });
});

describe('the crash backoff', () => {
  test('after 3 crashes the next start is at t=700 ms (100, 200, 400 after each), capped at restartDelay.max', async () => {
    const s = setup({ minWorkers: 1, restartDelay: { initial: 100, max: 1000 } });
    s.scaler.start();
    const delays: number[] = [];
    for (let i = 0; i < 3; i++) {
      delays.push(s.crash(s.workers[0], -1));
      assert.equal(s.workers.length, 0, 'nothing starts before its delay');
      await s.clock.advance(delays[i] - 1);
      assert.equal(s.workers.length, 0, `crash ${i + 1}: not 1 ms early`);
      assert.equal(s.scaler.maySpawn(), false);
      await s.clock.advance(1);
      assert.equal(s.workers.length, 1, `crash ${i + 1}: started at its delay`);
      assert.equal(s.scaler.maySpawn(), true);
    }
    assert.deepEqual(delays, [100, 200, 400]);
    assert.deepEqual(s.spawned, [0, 100, 300, 700]);
    // Doubling up to the cap.
    assert.equal(s.crash(s.workers[0], -1), 800);
    await s.clock.advance(800);
    assert.equal(s.crash(s.workers[0], 5000), 1000);
    await s.clock.advance(1000);
    assert.deepEqual(s.spawned, [0, 100, 300, 700, 1500, 2500]);
  });

  test('a worker that served 10 s before it crashed starts the count again', async () => {
    const s = setup({ minWorkers: 1, restartDelay: { initial: 100, max: 10_000 } });
    s.scaler.start();
    assert.equal(s.crash(s.workers[0], -1), 100);
    await s.clock.advance(100);
    assert.equal(s.crash(s.workers[0], 9_999), 200);
    await s.clock.advance(200);
    assert.equal(s.crash(s.workers[0], 10_000), 100);
  });

  test('a connection that waits during the backoff starts no worker before it ends', async () => {
    const s = setup({ minWorkers: 0 });
    s.scaler.start();
    s.setWaiting(1);
    s.scaler.fill();
    assert.equal(s.crash(s.workers[0], -1), 100);
    s.scaler.scheduleSpawn();
    await s.clock.advance(99);
    assert.equal(s.workers.length, 0);
    await s.clock.advance(1);
    assert.equal(s.workers.length, 1);
  });
});

describe('idle scale-down', () => {
  /** Three ready workers above a floor of 1, checked every 100 ms, idle grace 1000 ms. */
  async function threeIdle() {
    const s = setup({ minWorkers: 1, checkInterval: 100, idleTimeout: 1000 });
    s.scaler.start();
    s.online(s.workers[0]);
    const a = s.scaler.scaleUp();
    const b = s.scaler.scaleUp();
    await s.clock.advance(10);
    s.online(a);
    await s.clock.advance(10);
    s.online(b);
    return s;
  }

  test('one worker per check, the longest idle first, once idle for the grace, never below the floor', async () => {
    const s = await threeIdle();
    // Scale-up was at t=0; worker 1 idle since 0, 2 since 10, 3 since 20.
    await s.clock.advance(979); // t=999: nobody idle for 1000 ms yet
    assert.deepEqual(s.drained, []);
    await s.clock.advance(1); // t=1000: the check at 1000 takes worker 1
    assert.deepEqual(s.drained, [1]);
    await s.clock.advance(99);
    assert.deepEqual(s.drained, [1], 'one per check');
    await s.clock.advance(1); // t=1100: worker 2, idle since 10
    assert.deepEqual(s.drained, [1, 2]);
    await s.clock.advance(10_000);
    assert.deepEqual(s.drained, [1, 2], 'the floor stays');
    assert.equal(s.workers.length, 1);
  });

  test('a busy worker and a recent scale-up hold scale-down back', async () => {
    const s = await threeIdle();
    s.workers[0].connections = 1;
    await s.clock.advance(1080); // t=1100: worker 2 has been idle for 1090 ms
    assert.deepEqual(s.drained, [2], 'the busy worker 1 stays');
    s.scaler.scaleUp(); // t=1100
    await s.clock.advance(999);
    assert.deepEqual(s.drained, [2], 'no scale-down within the grace after a scale-up');
    await s.clock.advance(1);
    assert.deepEqual(s.drained, [2, 3]);
  });

  test('no checks without workersCheckingInterval', async () => {
    const s = setup({ minWorkers: 0, idleTimeout: 10 });
    s.scaler.start();
    const w = s.scaler.scaleUp();
    s.online(w);
    await s.clock.advance(60_000);
    assert.deepEqual(s.drained, []);
  });
});

test('a stopped scaler starts nothing, checks nothing and lowers the floor to 0', async () => {
  const s = setup({ minWorkers: 2, checkInterval: 100, idleTimeout: 0 });
  s.scaler.start();
  s.online(s.workers[0]);
  s.online(s.workers[1]);
  s.crash(s.workers[1], -1);
  s.scaler.stop();
  assert.equal(s.scaler.minWorkers, 0);
  assert.equal(s.scaler.maySpawn(), false);
  await s.clock.advance(60_000);
  assert.equal(s.workers.length, 1);
  assert.deepEqual(s.drained, []);
});
