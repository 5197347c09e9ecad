// The in-flight response list of the server guard (src/app/active-responses.ts): pure, no process.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { ActiveResponses } from '../src/app/active-responses';

test('add, has and delete keep every other item, in any order of removal', () => {
  const list = new ActiveResponses<{ n: number }>();
  const items = Array.from({ length: 6 }, (_, n) => ({ n }));
  for (const item of items) list.add(item);
  assert.equal(list.size, 6);
  // Remove from the middle, the end and the start: the last item moves into each hole.
  for (const n of [2, 5, 0]) assert.equal(list.delete(items[n]!), true);
  assert.equal(list.size, 3);
  for (const item of items) assert.equal(list.has(item), [1, 3, 4].includes(item.n), `item ${item.n}`);
  assert.deepEqual(
    list
      .snapshot()
      .map((i) => i.n)
      .sort(),
    [1, 3, 4],
  );
  for (const n of [4, 1, 3]) assert.equal(list.delete(items[n]!), true);
  assert.equal(list.size, 0);
  assert.deepEqual(list.snapshot(), []);
});

test('adding twice keeps one entry; deleting what is not there is false and changes nothing', () => {
  const list = new ActiveResponses<object>();
  const a = {};
  const b = {};
  list.add(a);
  list.add(a);
  assert.equal(list.size, 1);
  assert.equal(list.delete(b), false);
  assert.equal(list.delete(a), true);
  assert.equal(list.delete(a), false);
  assert.equal(list.has(a), false);
  list.add(a);
  assert.equal(list.has(a), true);
});

test('lists are independent: an item may be in several', () => {
  const one = new ActiveResponses<object>();
  const two = new ActiveResponses<object>();
  const a = {};
  const b = {};
  one.add(a);
  two.add(b);
  assert.equal(two.has(a), false);
  assert.equal(two.delete(a), false);
  assert.equal(one.has(a), true);
  two.add(a);
  assert.equal(one.delete(a), true);
  assert.equal(two.has(a), true);
  assert.equal(two.has(b), true);
});

test('a snapshot is a copy: removing while walking it skips nothing', () => {
  const list = new ActiveResponses<{ n: number }>();
  const items = Array.from({ length: 4 }, (_, n) => ({ n }));
  for (const item of items) list.add(item);
  const seen: number[] = [];
  for (const item of list.snapshot()) {
    seen.push(item.n);
    list.delete(item);
  }
  assert.deepEqual(seen.sort(), [0, 1, 2, 3]);
  assert.equal(list.size, 0);
});
