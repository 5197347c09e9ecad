/**
 * The pool's rules, in-process, on a fake clock and fake processes: backoff (the daemon's and the
 * pool library's), standby promotion, broken reports, scaling and publication races, the worker
 * state machine and the reload plan. Fast and exact; test/zero-downtime.test.ts and friends check the same
 * rules against real workers.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { afterEach, describe, test } from 'node:test';
import { planReconfigure } from '../src/daemon/pool/reconfigure';
import { advance, can, IllegalTransitionError, type Lifecycle } from '../src/daemon/worker/worker-state';
import { POOL_STABLE_AFTER_MS, RestartBackoff } from '../src/socketnaut/policy';
import { RestartPolicy } from '../src/supervise/restart-policy';
import { FakeClock, type FakePool, type FakeProcess, fakePool, settle } from './helpers/fake-pool';

const pools: FakePool[] = [];
afterEach(() => {
  for (const p of pools.splice(0)) p.cleanup();
});
function pool(...args: Parameters<typeof fakePool>): FakePool {
  const p = fakePool(...args);
  pools.push(p);
  return p;
}

describe('restart policy (pure)', () => {
  const at = (n: number) => 1_000_000 + n;

  test('delays double from 100 ms up to the 30 s cap, jittered to 50-100 %', () => {
    const max = new RestartPolicy({ random: () => 0.999999 });
    const delays = Array.from({ length: 12 }, (_, i) =>
      max.record({ kind: 'crash', at: at(i), ranForMs: 0 }),
    );
    assert.deepEqual(delays, [100, 200, 400, 800, 1600, 3200, 6400, 12800, 25600, 30000, 30000, 30000]);
    const min = new RestartPolicy({ random: () => 0 });
    assert.equal(min.record({ kind: 'crash', at: at(0), ranForMs: 0 }), 50);
    assert.equal(min.record({ kind: 'crash', at: at(1), ranForMs: 0 }), 100);
  });

  test('crashes, failed starts and broken reports climb the same ladder', () => {
    const p = new RestartPolicy({ random: () => 0.999999 });
    assert.equal(p.record({ kind: 'crash', at: at(0), ranForMs: 10 }), 100);
    assert.equal(p.record({ kind: 'failed-start', at: at(1), ranForMs: null }), 200);
    assert.equal(p.record({ kind: 'broken', at: at(2), ranForMs: 50 }), 400);
    assert.equal(p.failures, 3);
  });

  test('a worker that ran stably before failing starts the count over', () => {
    const p = new RestartPolicy({ random: () => 0.999999, stableAfterMs: 60_000 });
    for (let i = 0; i < 5; i++) p.record({ kind: 'crash', at: at(i), ranForMs: 100 });
    assert.equal(p.record({ kind: 'crash', at: at(10), ranForMs: 60_000 }), 100);
    assert.equal(p.failures, 1);
  });

  test('a failure long after the last retry starts the count over, even if it never came online', () => {
    const p = new RestartPolicy({ random: () => 0.999999, stableAfterMs: 60_000 });
    for (let i = 0; i < 4; i++) p.record({ kind: 'failed-start', at: at(i), ranForMs: null });
    assert.equal(p.record({ kind: 'failed-start', at: at(3 + 800 + 60_000), ranForMs: null }), 100);
  });

  test('a standby stands in for the first three failures in a row, not for a loop', () => {
    const p = new RestartPolicy();
    const verdicts = Array.from({ length: 5 }, (_, i) => {
      p.record({ kind: 'crash', at: at(i), ranForMs: 0 });
      return p.mayUseStandby();
    });
    assert.deepEqual(verdicts, [true, true, true, false, false]);
  });
});

describe("the pool library's restart backoff (the same policy, on a fake clock)", () => {
  test('restartDelay.initial/max are the base and cap: exact doubling, no jitter, 0 before any failure', () => {
    const clock = new FakeClock();
    const backoff = new RestartBackoff(40, 160, clock);
    assert.equal(backoff.delayMs(), 0);
    const delays = [-1, 5, 5, 5, 5].map((ranFor) => {
      backoff.recordFailure(ranFor);
      return backoff.delayMs();
    });
    assert.deepEqual(delays, [40, 80, 160, 160, 160]);
    assert.equal(backoff.failures, 5);
  });

  test('a worker that served 10 s, or a failure 10 s after the last retry, starts the count over', async () => {
    const clock = new FakeClock();
    const backoff = new RestartBackoff(100, 10_000, clock);
    for (let i = 0; i < 4; i++) backoff.recordFailure(0);
    assert.equal(backoff.delayMs(), 800);
    backoff.recordFailure(POOL_STABLE_AFTER_MS);
    assert.deepEqual([backoff.failures, backoff.delayMs()], [1, 100]);
    backoff.recordFailure(-1);
    assert.equal(backoff.delayMs(), 200);
    await clock.advance(200 + POOL_STABLE_AFTER_MS - 1);
    backoff.recordFailure(-1);
    assert.equal(backoff.delayMs(), 400);
    await clock.advance(400 + POOL_STABLE_AFTER_MS);
    backoff.recordFailure(-1);
    assert.deepEqual([backoff.failures, backoff.delayMs()], [1, 100]);
  });
});

describe('worker state machine', () => {
  const start: Lifecycle = { state: 'starting', since: 0 };

  test('legal transitions carry their data', () => {
    const online = advance(start, { type: 'online', suspended: true }, 10);
    assert.deepEqual(online, { state: 'suspended', since: 10, onlineAt: 10 });
    const resumed = advance(online, { type: 'resume' }, 20);
    assert.deepEqual(resumed, { state: 'online', since: 20, onlineAt: 10 });
    const draining = advance(resumed, { type: 'drain', reason: 'replaced' }, 30);
    assert.deepEqual(draining, { state: 'draining', since: 30, onlineAt: 10, reason: 'replaced' });
    const exited = advance(draining, { type: 'exit', exit: { code: 0, signal: null } }, 40);
    assert.deepEqual(exited, { state: 'exited', since: 40, onlineAt: 10, exit: { code: 0, signal: null } });
  });

  test('an illegal transition throws', () => {
    const online = advance(start, { type: 'online', suspended: false }, 1);
    assert.throws(() => advance(online, { type: 'online', suspended: false }, 2), IllegalTransitionError);
    assert.throws(() => advance(online, { type: 'resume' }, 2), IllegalTransitionError);
    const exited = advance(online, { type: 'exit', exit: { code: 1, signal: null } }, 3);
    for (const event of [
      { type: 'exit', exit: { code: 1, signal: null } },
      { type: 'drain', reason: 'stopped' },
      { type: 'resume' },
    ] as const) {
      assert.throws(() => advance(exited, event, 4), /illegal worker transition/);
    }
  });

  test('can() says exactly which transitions advance() takes (the guards ask it)', () => {
    const at: Record<string, Lifecycle> = {
      starting: start,
      online: { state: 'online', since: 1, onlineAt: 1 },
      suspended: { state: 'suspended', since: 1, onlineAt: 1 },
      draining: { state: 'draining', since: 1, onlineAt: 1, reason: 'replaced' },
      exited: { state: 'exited', since: 1, onlineAt: 1, exit: { code: 0, signal: null } },
    };
    const events = [
      { type: 'online', suspended: false },
      { type: 'resume' },
      { type: 'drain', reason: 'stopped' },
      { type: 'exit', exit: { code: 0, signal: null } },
    ] as const;
    const legal: string[] = [];
    for (const lifecycle of Object.values(at)) {
      for (const event of events) {
        const allowed = can(lifecycle.state, event.type);
        if (allowed) legal.push(`${lifecycle.state} ${event.type}`);
        if (allowed) advance(lifecycle, event, 2);
        else assert.throws(() => advance(lifecycle, event, 2), IllegalTransitionError);
      }
    }
    assert.deepEqual(legal, [
      'starting online',
      'starting drain',
      'starting exit',
      'online drain',
      'online exit',
      'suspended resume',
      'suspended drain',
      'suspended exit',
      'draining exit',
    ]);
  });
});

/** Spawns of a slot (not standbys) so far. */
const slotSpawns = (p: FakePool) => p.spawned.filter((s) => s.spec.slot !== null);
const standbySpawns = (p: FakePool) => p.spawned.filter((s) => s.spec.slot === null);

describe('pool on a fake clock', () => {
  test('a worker that crashes soon after coming online is restarted with growing delays', async () => {
    const p = pool({ workers: 1 }, (proc, clock) => {
      queueMicrotask(() => proc.online());
      clock.setTimeout(() => proc.exit(1, null), 100);
    });
    await p.supervisor.start().catch(() => undefined);
    await p.clock.advance(8000);
    // 100 ms online, then 100, 200, 400, 800, 1600, 3200 ms of backoff: about 7 starts in 8 s.
    const starts = slotSpawns(p).length;
    assert.ok(starts >= 4 && starts <= 8, `${starts} starts in 8 s`);
    const backoff = p.supervisor.status().slots[0]!.backoffMs;
    assert.ok(backoff !== null && backoff >= 1600, `backoff ${backoff}`);
  });

  test('a worker reporting broken every 50 ms gets one replacement at a time, with backoff', async () => {
    const p = pool({ workers: 1 }, (proc, clock) => {
      queueMicrotask(() => proc.online());
      const report = () => {
        if (proc.exited) return;
        proc.broken('database down');
        clock.setTimeout(report, 50);
      };
      clock.setTimeout(report, 50);
    });
    await p.supervisor.start();
    await p.clock.advance(8000);
    const starts = slotSpawns(p).length;
    assert.ok(starts <= 8, `${starts} starts in 8 s`);
    assert.ok(p.alive().length <= 2, `${p.alive().length} processes alive at once`);
    assert.equal(p.supervisor.status().slots[0]!.workerId !== null, true);
  });

  test('a standby that dies 100 ms after coming online is respawned with backoff', async () => {
    const p = pool({ workers: 1, standby: 1 }, (proc, clock) => {
      queueMicrotask(() => proc.online());
      if (proc.spec.slot === null) clock.setTimeout(() => proc.exit(1, null), 100);
    });
    await p.supervisor.start();
    await p.clock.advance(8000);
    const starts = standbySpawns(p).length;
    assert.ok(starts <= 8, `${starts} standby starts in 8 s`);
    assert.equal(slotSpawns(p).length, 1, 'the slot worker is left alone');
  });

  test('a dead slot worker is replaced by the standby at once, and a new standby is started', async () => {
    const p = pool({ workers: 1, standby: 1 });
    await p.supervisor.start();
    await p.clock.advance(10);
    const [slotWorker] = slotSpawns(p);
    const [spare] = standbySpawns(p);
    assert.ok(slotWorker && spare);
    slotWorker.exit(1, null);
    await settle();
    const status = p.supervisor.status();
    assert.equal(status.slots[0]!.workerId, spare.spec.id, 'promoted before any new start');
    await p.clock.advance(10);
    assert.equal(standbySpawns(p).length, 2, 'a new standby started');
    const link = fs.readlinkSync(path.join(p.tmpDir, 'app.0.sock'));
    assert.equal(link, path.basename(spare.spec.socketPath));
  });

  test('close: a restart or scale-up queued while the workers drain starts none; all have exited', async () => {
    // The workers ignore 'shutdown': the drain lasts until the SIGTERM after shutdownTimeout.
    const p = pool({ workers: 1, standby: 1, shutdownTimeout: 10_000 }, (proc) => {
      queueMicrotask(() => proc.online());
      const send = proc.send.bind(proc);
      proc.send = (message) => (message === 'shutdown' ? true : send(message));
    });
    await p.supervisor.start();
    await p.clock.advance(10);
    const before = p.spawned.length;
    assert.equal(before, 2);
    const closing = p.supervisor.close();
    const restart = p.supervisor.restart();
    const scaled = p.supervisor.setStandby(3);
    await p.clock.advance(10_000);
    assert.deepEqual(await closing, { stopped: 2 });
    await assert.rejects(restart, /cannot restart: the daemon is shutting down/);
    await Promise.allSettled([scaled]);
    await p.clock.advance(10_000);
    assert.equal(p.spawned.length, before, 'no worker spawned once close began');
    assert.deepEqual(p.alive(), []);
  });

  test('stop: a standby that comes online after stop began is drained before stop resolves', async () => {
    let late: FakeProcess | null = null;
    const p = pool({ workers: 1, standby: 1 }, (proc) => {
      if (proc.spec.slot === null) late = proc;
      else queueMicrotask(() => proc.online());
    });
    await p.supervisor.start();
    await p.clock.advance(10);
    assert.ok(late, 'the standby was spawned');
    const stopping = p.supervisor.stop();
    (late as FakeProcess).online();
    await p.clock.advance(10_000);
    assert.deepEqual(await stopping, { stopped: 2 });
    assert.deepEqual(p.alive(), []);
    const again = await p.supervisor.start();
    assert.equal(again.alreadyRunning, false, 'a later start starts workers again');
    assert.equal(p.alive().length, 1);
  });

  test('set-workers down while a crash replacement boots never publishes the removed slot', async () => {
    let hold: FakeProcess | null = null;
    const p = pool({ workers: 2 }, (proc) => {
      // The second worker of slot 1 (its replacement) waits until the test lets it come online.
      if (proc.spec.slot === 1 && slotSpawns(p).filter((s) => s.spec.slot === 1).length === 2) hold = proc;
      else queueMicrotask(() => proc.online());
    });
    await p.supervisor.start();
    const slot1 = slotSpawns(p).find((s) => s.spec.slot === 1)!;
    slot1.exit(1, null);
    await p.clock.advance(1000);
    assert.ok(hold, 'the replacement of slot 1 is starting');
    await p.supervisor.setWorkers(1);
    (hold as FakeProcess).online();
    await p.clock.advance(1000);
    assert.equal(fs.existsSync(path.join(p.tmpDir, 'app.1.sock')), false);
    assert.equal((hold as FakeProcess).exited, true, 'the late replacement was stopped');
    assert.deepEqual(
      p.supervisor.listWorkers().map((w) => w.slot),
      [0],
    );
  });

  test('a restart that cannot publish (a directory at app.0.sock) changes nothing and leaks nothing', async () => {
    const p = pool({ workers: 2 });
    await p.supervisor.start();
    const before = p.supervisor.status().slots.map((s) => s.workerId);
    fs.rmSync(path.join(p.tmpDir, 'app.1.sock'));
    fs.mkdirSync(path.join(p.tmpDir, 'app.1.sock'));
    await assert.rejects(p.supervisor.restart(), /app\.1\.sock is a directory/);
    await settle();
    assert.deepEqual(
      p.supervisor.status().slots.map((s) => s.workerId),
      before,
    );
    assert.equal(p.alive().length, 2, 'the new generation was stopped');
    const link0 = fs.readlinkSync(path.join(p.tmpDir, 'app.0.sock'));
    assert.equal(link0, path.basename(p.spawned[0]!.spec.socketPath), 'slot 0 still points at its worker');
    assert.deepEqual(
      fs.readdirSync(p.tmpDir).filter((f) => f.includes('.new-')),
      [],
    );
  });

  test('set-standby during a restart ends with the standbys it asked for', async () => {
    let release: (() => void) | null = null;
    const p = pool({ workers: 1, standby: 0 }, (proc) => {
      if (p.spawned.length === 2) release = () => proc.online();
      else queueMicrotask(() => proc.online());
    });
    await p.supervisor.start();
    const restarting = p.supervisor.restart();
    await settle();
    const scaling = p.supervisor.setStandby(2);
    assert.ok(release);
    (release as () => void)();
    await restarting;
    await scaling;
    await p.clock.advance(100);
    const standbys = p.supervisor.listWorkers().filter((w) => w.role === 'standby');
    assert.equal(standbys.length, 2);
  });

  test('a resume that finds no channel is delivered when the worker reconnects', async () => {
    const p = pool({ workers: 1 });
    await p.supervisor.start({ suspended: true });
    const [proc] = p.spawned;
    assert.ok(proc);
    proc.connected = false;
    p.supervisor.resume();
    assert.equal(
      p.supervisor.listWorkers()[0]!.worker.state,
      'suspended',
      'not resumed yet: status tells the truth',
    );
    proc.connected = true;
    proc.emit('connect');
    assert.ok(proc.sent.includes('resume'));
    assert.equal(p.supervisor.listWorkers()[0]!.worker.state, 'online');
  });
});

describe('publication', () => {
  test('symlinks: absolute links the published path to the full socket path; relative (default) to its name', async () => {
    for (const symlinks of ['absolute', 'relative'] as const) {
      const p = pool({ workers: 1, symlinks });
      await p.supervisor.start();
      const target = fs.readlinkSync(path.join(p.tmpDir, 'app.0.sock'));
      const socket = p.spawned[0]!.spec.socketPath;
      assert.equal(target, symlinks === 'absolute' ? socket : path.basename(socket));
    }
  });
});

describe('reload plan', () => {
  const base = pool({}).supervisor.currentConfig;

  test('classifies every changed key', () => {
    const plan = planReconfigure(base, {
      ...base,
      script: '/other.js',
      onlineTimeout: 1,
      workers: 3,
      name: 'renamed',
      tmpDir: '/elsewhere',
    });
    assert.deepEqual(plan.restart, ['script']);
    assert.deepEqual(plan.tune, ['onlineTimeout']);
    assert.deepEqual(plan.fixed, ['tmpDir']);
    assert.deepEqual(plan.workers, { from: 1, to: 3 });
    assert.deepEqual(plan.rename, { from: 'app', to: 'renamed' });
    assert.equal(plan.standby, null);
    assert.equal(plan.socketNaming, false);
  });

  test('an unchanged config plans nothing', () => {
    const plan = planReconfigure(base, { ...base, env: [...base.env] });
    assert.deepEqual(plan, {
      fixed: [],
      restart: [],
      tune: [],
      rename: null,
      workers: null,
      standby: null,
      socketNaming: false,
    });
  });
});
