/**
 * The listen front's handoff window (src/fronts/handoff-window.ts), in process: a settled
 * handoff wakes one waiter, not every connection that waits (each woken one goes through the
 * targets again); the next one at the check phase when the woken one took no place; a worker
 * gone wakes them all.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { HandoffWindow } from '../src/fronts/handoff-window.js';

const checkPhase = () => new Promise<void>((resolve) => setImmediate(resolve));

function waiters(window: HandoffWindow, n: number): boolean[] {
  const woken = Array.from({ length: n }, () => false);
  woken.forEach((_, i) => {
    void window.settled().then(() => {
      woken[i] = true;
    });
  });
  return woken;
}

test('a settled handoff wakes the oldest waiter only, when it takes the place', async () => {
  const window = new HandoffWindow(1, 60_000, () => undefined);
  // The oldest waiter takes the freed place (its handoff starts before the check phase).
  let took = false;
  void window.settled().then(() => {
    took = true;
    void window.track('b', () => new Promise<void>(() => undefined));
  });
  const others = waiters(window, 3);
  await window.track('a', async () => undefined);
  await checkPhase();
  await checkPhase();
  assert.equal(took, true);
  assert.deepEqual(others, [false, false, false]);
});

test('a woken waiter that took no place passes the wake on at the check phase; a worker gone wakes all', async () => {
  const window = new HandoffWindow(1, 60_000, () => undefined);
  const woken = waiters(window, 3);
  await window.track('a', async () => undefined);
  await Promise.resolve();
  assert.deepEqual(woken, [true, false, false]);
  await checkPhase();
  await Promise.resolve();
  assert.equal(woken[1], true);
  window.forget('a');
  await Promise.resolve();
  assert.deepEqual(woken, [true, true, true]);
});
