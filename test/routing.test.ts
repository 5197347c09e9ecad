/**
 * The pure choosers of src/net/routing.ts, in-process: the `listen` front's order of its
 * workers (round robin, sticky hash) and the pool library's pick (idle worker, new worker,
 * least-loaded, wait).
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import {
  type Candidate,
  chooseWorker,
  leastLoaded,
  plainAddress,
  stickySlot,
  targetOrder,
} from '../src/net/routing';

describe('plainAddress', () => {
  test('writes an IPv4-mapped IPv6 address as IPv4 and lower-cases IPv6', () => {
    assert.equal(plainAddress('::ffff:10.0.0.7'), '10.0.0.7');
    assert.equal(plainAddress('::FFFF:10.0.0.7'), '10.0.0.7');
    assert.equal(plainAddress('2001:DB8::1'), '2001:db8::1');
    assert.equal(plainAddress('::ffff:1:2'), '::ffff:1:2');
    assert.equal(plainAddress('127.0.0.1'), '127.0.0.1');
  });
});

describe('stickySlot', () => {
  test('one client, one slot: the same for its IPv4 and IPv4-mapped forms, and every time', () => {
    for (let i = 0; i < 50; i++) {
      const address = `192.0.2.${i}`;
      const slot = stickySlot(address, 3);
      assert.equal(stickySlot(`::ffff:${address}`, 3), slot, address);
      assert.equal(stickySlot(address, 3), slot, address);
      assert.ok(Number.isInteger(slot) && slot >= 0 && slot < 3, `${address} → ${slot}`);
    }
    assert.equal(stickySlot('2001:DB8::1', 5), stickySlot('2001:db8::1', 5));
  });

  test('clients spread over every slot; no slot count below one', () => {
    const used = new Set(Array.from({ length: 256 }, (_, i) => stickySlot(`198.51.100.${i}`, 4)));
    assert.deepEqual([...used].sort(), [0, 1, 2, 3]);
    assert.equal(stickySlot('198.51.100.1', 0), 0);
    assert.equal(stickySlot('198.51.100.1', 1), 0);
  });
});

describe('targetOrder', () => {
  const slot = (n: number) => ({ slot: n });
  const slots = (list: { slot: number }[]) => list.map((t) => t.slot);

  test('round robin: from the turn-th worker on, wrapping round; the input is not changed', () => {
    const targets = [slot(0), slot(1), slot(2)];
    assert.deepEqual(slots(targetOrder(targets, { slots: 3, turn: 0 })), [0, 1, 2]);
    assert.deepEqual(slots(targetOrder(targets, { slots: 3, turn: 1 })), [1, 2, 0]);
    assert.deepEqual(slots(targetOrder(targets, { slots: 3, turn: 5 })), [2, 0, 1]);
    assert.deepEqual(slots(targets), [0, 1, 2]);
    assert.deepEqual(targetOrder([], { slots: 3, turn: 4 }), []);
  });

  test('sticky: the client slot first, then the slots after it, wrapping round; the turn ignored', () => {
    const client = '192.0.2.7';
    const wanted = stickySlot(client, 4);
    const targets = [slot(0), slot(1), slot(2), slot(3)];
    const expected = [0, 1, 2, 3].map((i) => (wanted + i) % 4);
    for (const turn of [0, 1, 3]) {
      assert.deepEqual(slots(targetOrder(targets, { slots: 4, sticky: client, turn })), expected);
    }
    assert.deepEqual(
      slots(targetOrder(targets, { slots: 4, sticky: `::ffff:${client}`, turn: 0 })),
      expected,
    );
  });

  test('sticky with the client slot not serving: the next serving slot after it takes the client', () => {
    const client = '192.0.2.7';
    const wanted = stickySlot(client, 4);
    const serving = [0, 1, 2, 3].filter((n) => n !== wanted).map(slot);
    const first = targetOrder(serving, { slots: 4, sticky: client, turn: 0 })[0];
    assert.equal(first?.slot, (wanted + 1) % 4);
  });

  test('sticky with no address (the client has gone) is round robin', () => {
    const targets = [slot(0), slot(1)];
    assert.deepEqual(slots(targetOrder(targets, { slots: 2, sticky: undefined, turn: 1 })), [1, 0]);
  });
});

const w = (name: string, connections: number, ready = true): Candidate & { name: string } => ({
  name,
  connections,
  ready,
});

describe('leastLoaded', () => {
  test('the fewest connections; at equal load a ready worker before a starting one, else the earlier', () => {
    assert.equal(leastLoaded([]), undefined);
    assert.equal(leastLoaded([w('a', 3), w('b', 1), w('c', 2)])?.name, 'b');
    assert.equal(leastLoaded([w('a', 1, false), w('b', 1)])?.name, 'b');
    assert.equal(leastLoaded([w('a', 1), w('b', 1, false)])?.name, 'a');
    assert.equal(leastLoaded([w('a', 2), w('b', 2)])?.name, 'a');
  });
});

describe('chooseWorker', () => {
  const room = { max: 4, starting: 0, maxSpawning: 2, maySpawn: true };

  test('an idle worker first, even when another could be started', () => {
    const choice = chooseWorker([w('a', 2), w('b', 0)], room);
    assert.deepEqual(choice, { kind: 'worker', worker: w('b', 0) });
  });

  test('every worker busy: a new one while below the maximum and fewer than maxSpawning start', () => {
    assert.deepEqual(chooseWorker([w('a', 1)], room), { kind: 'spawn' });
    assert.deepEqual(chooseWorker([], room), { kind: 'spawn' });
  });

  test('no new worker allowed: the least-loaded, or wait when there is none', () => {
    const busy = [w('a', 3), w('b', 1)];
    const least = { kind: 'worker', worker: w('b', 1) };
    assert.deepEqual(chooseWorker(busy, { ...room, max: 2 }), least);
    assert.deepEqual(chooseWorker(busy, { ...room, starting: 2 }), least);
    assert.deepEqual(chooseWorker(busy, { ...room, maySpawn: false }), least);
    assert.deepEqual(chooseWorker([], { ...room, maySpawn: false }), { kind: 'wait' });
    assert.deepEqual(chooseWorker([], { ...room, max: 0 }), { kind: 'wait' });
  });
});
