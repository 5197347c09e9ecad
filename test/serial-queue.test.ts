/** The one-at-a-time queue of the supervisor's commands and the daemon's reloads (in-process). */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { SerialQueue } from '../src/supervise/serial-queue';

/** A promise settled from outside, to hold a task open. */
function gate(): { promise: Promise<void>; open: () => void } {
  let open = () => {};
  const promise = new Promise<void>((resolve) => {
    open = resolve;
  });
  return { promise, open };
}

describe('SerialQueue', () => {
  test('a task starts only once the one before it has settled, in the order queued', async () => {
    const queue = new SerialQueue();
    const events: string[] = [];
    const first = gate();
    const a = queue.run(async () => {
      events.push('a start');
      await first.promise;
      events.push('a end');
      return 'a';
    });
    const b = queue.run(() => {
      events.push('b');
      return 'b';
    });
    const c = queue.run(async () => {
      events.push('c');
      return 'c';
    });
    await new Promise((resolve) => setImmediate(resolve));
    assert.deepEqual(events, ['a start'], 'b and c wait for a');
    first.open();
    assert.deepEqual(await Promise.all([a, b, c]), ['a', 'b', 'c']);
    assert.deepEqual(events, ['a start', 'a end', 'b', 'c']);
  });

  test('a task that fails (rejecting or throwing) rejects its own caller and the next still runs', async () => {
    const queue = new SerialQueue();
    const rejected = queue.run(async () => {
      throw new Error('async failure');
    });
    const thrown = queue.run(() => {
      throw new Error('sync failure');
    });
    const next = queue.run(async () => 'ran');
    await assert.rejects(rejected, /async failure/);
    await assert.rejects(thrown, /sync failure/);
    assert.equal(await next, 'ran');
  });
});
