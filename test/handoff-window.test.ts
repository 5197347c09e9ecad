/**
 * The listen front's handoff window (src/fronts/handoff-window.ts), in process: a worker with a
 * full window has no room until one of its handoffs settles; one whose oldest handoff stays
 * unconfirmed past the stall deadline is reported once and gets nothing until it confirms one
 * or is forgotten. (The queue of connections that wait is the front's, tested through the
 * binary in front*.test.ts.)
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { HandoffWindow } from '../src/fronts/handoff-window.js';

test('a full window has no room until a handoff settles, confirmed or not', () => {
  const window = new HandoffWindow(2, 60_000, () => undefined);
  const first = window.begin('a');
  const second = window.begin('a');
  assert.equal(window.hasRoom('a'), false);
  assert.equal(window.hasRoom('b'), true);
  first(false);
  assert.equal(window.hasRoom('a'), true);
  second(true);
  first(true); // settling twice frees nothing more
  assert.equal(window.hasRoom('a'), true);
});

test('a stall is reported once; a confirmation ends it, and a worker forgotten has room again', async () => {
  const reported: [string, number][] = [];
  const window = new HandoffWindow(4, 20, (id, n) => reported.push([id, n]));
  const stuck = window.begin('a');
  const other = window.begin('a');
  const deadline = Date.now() + 10_000;
  while (reported.length === 0 && Date.now() < deadline)
    await new Promise((resolve) => setTimeout(resolve, 5));
  assert.deepEqual(reported, [['a', 2]]);
  assert.equal(window.hasRoom('a'), false);
  assert.deepEqual(Object.keys(window.stalled()), ['a']);
  stuck(true);
  assert.equal(window.hasRoom('a'), true);
  other(false);
  window.begin('b');
  while (reported.length === 1 && Date.now() < deadline)
    await new Promise((resolve) => setTimeout(resolve, 5));
  assert.deepEqual(reported, [
    ['a', 2],
    ['b', 1],
  ]);
  assert.equal(window.hasRoom('b'), false);
  window.forget('b');
  assert.equal(window.hasRoom('b'), true);
  assert.deepEqual(window.stalled(), {});
  window.forget('a');
});
