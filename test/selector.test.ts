/** The worker selector of send-msg/send-req: parsing and matching, as pure functions. */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import {
  type LiveWorker,
  parseSelector,
  type SelectableWorker,
  SelectorError,
  selectWorkers,
} from '../src/daemon/messaging/selector';
import type { WorkerRole } from '../src/ipc/protocol';

let started = 0;
function live(role: WorkerRole, id: string, pid: number, slot: number | null, state = 'online'): LiveWorker {
  const worker: SelectableWorker = { id, pid, state, startedAt: ++started };
  return { worker, role, slot };
}

// Two serving slots, a standby, a replacement starting for slot 0 and its draining predecessor.
const pool = [
  live('standby', 'w0000000c', 103, null, 'suspended'),
  live('serving', 'w0000000b', 102, 1),
  live('draining', 'w0000000d', 104, 0, 'draining'),
  live('serving', 'w0000000a', 101, 0),
  live('starting', 'w0000000e', 105, 0, 'starting'),
  live('serving', 'w0000000f', 106, 2, 'exited'),
];

const pids = (selector: string | undefined) => selectWorkers(selector, pool).map((e) => e.worker.pid);

function rejects(selector: string, message: RegExp): void {
  assert.throws(
    () => selectWorkers(selector, pool),
    (err: unknown) => err instanceof SelectorError && message.test(err.message),
    selector,
  );
}

describe('worker selectors', () => {
  test('parts parse case-insensitively, with spaces around them', () => {
    assert.deepEqual(parseSelector(' ALL , Standby,every, 3 ,1 - 2, ID:w5a0e22b2, pid: 42'), [
      { text: 'ALL', kind: 'all' },
      { text: 'Standby', kind: 'standby' },
      { text: 'every', kind: 'every' },
      { text: '3', kind: 'slots', from: 3, to: 3 },
      { text: '1 - 2', kind: 'slots', from: 1, to: 2 },
      { text: 'ID:w5a0e22b2', kind: 'id', id: 'w5a0e22b2' },
      { text: 'pid: 42', kind: 'pid', pid: 42 },
    ]);
    assert.deepEqual(parseSelector(), [{ text: 'all', kind: 'all' }]);
  });

  test('each bad part is named, with what to write instead', () => {
    const bad: [string, RegExp][] = [
      ['', /it is empty; use all/],
      ['0,', /an empty part \(a comma too many\?\)/],
      ['2-0', /"2-0" is a range from high to low; write 0-2/],
      ['99999999999999999999', /slot number too large/],
      ['id:w!', /expected id:<worker id>/],
      ['pid:0', /expected pid:<process id>/],
      ['pid:x', /expected pid:<process id>/],
      ['$x', /expected pid:<process id> or \$<process id>/],
      ['$0', /expected pid:<process id> or \$<process id>/],
      ['!', /! needs a part after it/],
      ['!!0', /negate a part once/],
      ['-', /"-" is not a part/],
      ['!bogus', /"!bogus" is not a part/],
      ['serving', /"serving" is not a part; use all \(serving workers\)/],
    ];
    for (const [selector, message] of bad) {
      assert.throws(
        () => parseSelector(selector),
        (err: unknown) =>
          err instanceof SelectorError &&
          err.message.startsWith(`invalid worker selector ${JSON.stringify(selector)}: `) &&
          message.test(err.message),
        selector,
      );
    }
  });

  test('the original v2 forms: bare ids, $pid, open ranges, ! negation, self from a worker', () => {
    assert.deepEqual(pids('w0000000B'), [102]);
    assert.deepEqual(pids('$103'), [103]);
    assert.deepEqual(pids('-1'), [101, 102]);
    assert.deepEqual(pids('1-'), [102]);
    assert.deepEqual(pids('0-'), [101, 102]);
    // Negated slots invert among the serving workers; anything else among every live worker.
    assert.deepEqual(pids('!0'), [102]);
    assert.deepEqual(pids('!1-'), [101]);
    assert.deepEqual(pids('!$103'), [101, 102, 105, 104]);
    assert.deepEqual(pids('!standby'), [101, 102, 105, 104]);
    assert.deepEqual(pids('!all'), [103, 105, 104]);
    const sender = pool[1]!.worker;
    const from = (sel: string) => selectWorkers(sel, pool, sender).map((e) => e.worker.pid);
    assert.deepEqual(from('self'), [102]);
    assert.deepEqual(from('!self'), [101, 103, 105, 104]);
    assert.deepEqual(from('self,0'), [101, 102]);
    assert.throws(() => pids('!self'), /self is the sending worker; only a worker can use it/);
    assert.throws(() => pids('!every'), /!every matches no worker/);
  });

  test('all is the serving workers (the default); standby and every add the others', () => {
    assert.deepEqual(pids(undefined), [101, 102]);
    assert.deepEqual(pids('all'), [101, 102]);
    assert.deepEqual(pids('standby'), [103]);
    // Serving by slot, then standby, starting and draining; an exited worker never.
    assert.deepEqual(pids('every'), [101, 102, 103, 105, 104]);
  });

  test('slots name serving workers only; ids and pids name any live worker, once', () => {
    assert.deepEqual(pids('0'), [101]);
    assert.deepEqual(pids('0-1'), [101, 102]);
    assert.deepEqual(pids('1,0,0-1'), [101, 102]);
    assert.deepEqual(pids('id:W0000000D'), [104]);
    assert.deepEqual(pids('pid:105,standby'), [103, 105]);
  });

  test('a part that matches no live worker fails and says what is running', () => {
    rejects(
      '0,5',
      /worker selector in "0,5": 5 matches no worker \(serving slots: 0, 1; 1 standby; 1 starting; 1 draining\)/,
    );
    rejects('2', /2 matches no worker/);
    rejects('pid:106', /pid:106 matches no worker/);
    assert.throws(
      () => selectWorkers(undefined, []),
      /worker selector: all matches no worker \(no worker is running\)/,
    );
  });
});
