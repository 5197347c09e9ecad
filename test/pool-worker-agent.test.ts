/**
 * The pool worker's lifecycle (src/socketnaut/worker-agent.ts), in-process: the transition table,
 * illegal events throwing, the times a `WorkerAgent` records on a fake clock, and its load
 * count (a handoff counted once, whichever of its confirmation and the worker's report comes first).
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import type { Worker } from 'node:worker_threads';
import type { PoolWorker } from '../src/socketnaut/spawn.js';
import {
  advance,
  can,
  IllegalAgentTransitionError,
  WorkerAgent,
  type WorkerState,
} from '../src/socketnaut/worker-agent.js';
import { FakeClock, settle } from './helpers/fake-pool.js';

const STATES: WorkerState[] = ['starting', 'ready', 'draining', 'exited'];
const LEGAL: Record<string, WorkerState> = {
  'starting ready': 'ready',
  'starting drain': 'draining',
  'starting exit': 'exited',
  'ready drain': 'draining',
  'ready exit': 'exited',
  'draining exit': 'exited',
};

/** A worker that never runs: the agent only sees its face. */
function fakeWorker(): { proc: PoolWorker<Worker>; exit: (code: number) => void } {
  let exit: (code: number) => void = () => {};
  const exited = new Promise<number>((resolve) => {
    exit = resolve;
  });
  const proc: PoolWorker<Worker> = {
    handle: {} as Worker,
    id: 7,
    isThread: true,
    exited,
    lastError: undefined,
    sender: undefined,
    onMessage: () => {},
    post: () => true,
    drain: () => {},
    kill: () => {},
  };
  return { proc, exit };
}

describe('advance()', () => {
  for (const from of STATES) {
    for (const event of ['ready', 'drain', 'exit'] as const) {
      const to = LEGAL[`${from} ${event}`];
      if (to)
        test(`'${event}' in '${from}' gives '${to}'`, () => {
          assert.equal(advance(from, event), to);
          assert.equal(can(from, event), true);
        });
      else
        test(`'${event}' in '${from}' throws`, () => {
          assert.throws(() => advance(from, event), IllegalAgentTransitionError);
          assert.throws(() => advance(from, event), {
            message: `illegal pool worker transition: '${event}' in state '${from}'`,
          });
          assert.equal(can(from, event), false);
        });
    }
  }
});

describe('WorkerAgent', () => {
  test('records when it started, came online and how long it ran, on the clock it is given', async () => {
    const clock = new FakeClock();
    const t0 = clock.now();
    const { proc, exit } = fakeWorker();
    const agent = new WorkerAgent(proc, clock);
    assert.equal(agent.state, 'starting');
    assert.equal(agent.startedAt, t0);
    await clock.advance(250);
    agent.online({ port: 1234, host: '127.0.0.1' }, '/tmp/hop.sock');
    assert.equal(agent.state, 'ready');
    assert.equal(agent.ready, true);
    assert.equal(agent.readyAt, t0 + 250);
    assert.equal(agent.idleSince, t0 + 250);
    assert.deepEqual(await agent.socketConnectOpts, { port: 1234, host: '127.0.0.1' });
    assert.equal(await agent.readyOrGone, true);
    await clock.advance(1000);
    agent.draining();
    assert.equal(agent.state, 'draining');
    assert.equal(agent.exit(), 1000);
    assert.equal(agent.state, 'exited');
    exit(0);
    await settle();
  });

  test('illegal events throw on the agent too: ready twice, drain twice, exit twice', () => {
    const { proc } = fakeWorker();
    const agent = new WorkerAgent(proc, new FakeClock());
    agent.online(null, '');
    assert.throws(() => agent.online(null, ''), IllegalAgentTransitionError);
    agent.draining();
    assert.throws(() => agent.draining(), IllegalAgentTransitionError);
    assert.throws(() => agent.online(null, ''), IllegalAgentTransitionError);
    agent.exit();
    assert.throws(() => agent.exit(), IllegalAgentTransitionError);
    assert.equal(agent.state, 'exited');
  });

  test('a worker that exits before it listens: never ready, ran for -1, its address null', async () => {
    const { proc, exit } = fakeWorker();
    const agent = new WorkerAgent(proc, new FakeClock());
    exit(1);
    assert.equal(await agent.readyOrGone, false);
    assert.equal(await agent.socketConnectOpts, null);
    assert.equal(agent.exit(), -1);
  });

  test('a handoff is counted once, whether its confirmation or the worker’s report comes first', () => {
    const clock = new FakeClock();
    for (const reportFirst of [false, true]) {
      const { proc } = fakeWorker();
      const agent = new WorkerAgent(proc, clock);
      agent.online(null, '');
      // Connection 1: handed and confirmed, then reported (open 1 after 1 received).
      agent.inTransit += 1;
      agent.recount();
      agent.inTransit -= 1;
      agent.handedOff();
      assert.equal(agent.connections, 1);
      agent.report(1, 1);
      assert.equal(agent.connections, 1);
      // Connection 2: in transit, its report and its confirmation in either order.
      agent.inTransit += 1;
      agent.recount();
      assert.equal(agent.connections, 2);
      const confirm = (): void => {
        agent.inTransit -= 1;
        agent.handedOff();
      };
      if (reportFirst) {
        agent.report(2, 2);
        assert.equal(agent.connections, 2, 'the report before the confirmation');
        confirm();
      } else {
        confirm();
        assert.equal(agent.connections, 2, 'the confirmation before the report');
        agent.report(2, 2);
      }
      assert.equal(agent.connections, 2);
      // Both close: idle from the report's time on.
      clock.advance(10);
      agent.report(0, 2);
      assert.equal(agent.connections, 0);
      assert.equal(agent.idleSince, clock.now());
    }
  });
});
