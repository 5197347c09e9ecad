/**
 * SPEC §4.6: nothing a peer sends on the control socket crashes the daemon, stops a worker or
 * leaves a client hanging. Deterministic cases for the framer and the server first, then a
 * seeded fuzz run against a real daemon (NSD_FUZZ_SEED=<n> replays a run's attack sequences).
 */
import assert from 'node:assert/strict';
import net from 'node:net';
import { StringDecoder } from 'node:string_decoder';
import { after, before, describe, test } from 'node:test';
import { request } from '../src/ipc/client';
import { FrameTooLargeError, LineFramer, MAX_FRAME_BYTES } from '../src/ipc/framing';
import { requestSchema } from '../src/ipc/protocol';
import { type AppDir, makeApp, teardown } from './helpers/app';
import { Daemon } from './helpers/daemon';
import { getJson } from './helpers/http';
import { waitFor } from './helpers/wait';

// CI replays fixed seeds so that a submission is judged on the same attacks every time;
// local runs draw a new seed each time to keep finding new inputs (replay any failure).
const CI_SEEDS = [1976769424, 1826053925, 862072565, 4115971307];
const SEED = process.env.NSD_FUZZ_SEED
  ? Number(process.env.NSD_FUZZ_SEED) >>> 0
  : process.env.CI
    ? CI_SEEDS[new Date().getUTCDate() % CI_SEEDS.length]!
    : Math.floor(Math.random() * 2 ** 32) >>> 0;
console.log(`ipc-fuzz seed ${SEED} (replay with NSD_FUZZ_SEED=${SEED})`);

/** Wall time of the fuzz run, and a bound on its connections whatever the machine's speed. */
const FUZZ_MS = 5_000;
const MAX_CONNECTIONS = 4_000;
const ATTACKERS = 4;
/** Oversized frames are megabytes each: a few per attacker are enough. */
const MAX_OVERSIZE_PER_ATTACKER = 4;
/** Not a performance threshold: how long a client waits before calling the daemon hung. */
const HANG_MS = 15_000;

// ---------------------------------------------------------------------------------------------
// A seeded PRNG (mulberry32): every attacker draws from its own stream, so a seed replays the
// same attacks whatever the interleaving.

function prng(seed: number) {
  let a = seed >>> 0;
  const next = (): number => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  return {
    next,
    /** An integer in [lo, hi]. */
    int: (lo: number, hi: number): number => lo + Math.floor(next() * (hi - lo + 1)),
    pick: <T>(items: readonly T[]): T => items[Math.floor(next() * items.length)]!,
    chance: (p: number): boolean => next() < p,
  };
}
type Rng = ReturnType<typeof prng>;

// ---------------------------------------------------------------------------------------------
// What the daemon must answer to one frame: the request schema is the oracle.

const SAFE_TYPES = ['status', 'config'] as const;
/** Valid requests of these types change what the daemon runs: the fuzzer never sends them. */
const ACTING_TYPES = [
  'start',
  'stop',
  'restart',
  'resume',
  'reload',
  'terminate',
  'set-workers',
  'set-standby',
  'worker-hello',
  'send-msg',
  'send-req',
] as const;

interface Expected {
  id: number | null;
  ok: boolean;
  /** A valid request the fuzzer must not send in bulk (stop, restart, …). */
  acting: boolean;
}

/** The reply a frame must get, or null for a blank line (no reply). */
function oracle(frame: string): Expected | null {
  if (frame.trim() === '') return null;
  let value: unknown;
  try {
    value = JSON.parse(frame);
  } catch {
    return { id: null, ok: false, acting: false };
  }
  const parsed = requestSchema.safeParse(value);
  if (parsed.success) {
    const id = JSON.parse(JSON.stringify(parsed.data.id)) as number;
    return { id, ok: true, acting: !(SAFE_TYPES as readonly string[]).includes(parsed.data.type) };
  }
  const id = typeof value === 'object' && value !== null ? (value as { id?: unknown }).id : undefined;
  // The id goes back through JSON: Infinity becomes null, -0 becomes 0.
  return {
    id: typeof id === 'number' ? (JSON.parse(JSON.stringify(id)) as number | null) : null,
    ok: false,
    acting: false,
  };
}

/** The complete frames in a payload as the daemon's framer sees them (the tail stays pending). */
function completeFrames(payload: Buffer): string[] {
  const lines = new StringDecoder('utf8').write(payload).split('\n');
  lines.pop();
  return lines;
}

function expectations(payload: Buffer): Expected[] {
  return completeFrames(payload).flatMap((f) => {
    const e = oracle(f);
    return e ? [e] : [];
  });
}

// ---------------------------------------------------------------------------------------------
// One connection, with a deadline, and the shape every reply line must have.

interface WireReply {
  id: number | null;
  ok: boolean;
  data?: unknown;
  error?: string;
}

const preview = (s: string | Buffer, n = 160): string => {
  const text = typeof s === 'string' ? s : s.toString('utf8');
  return JSON.stringify(text.length > n ? `${text.slice(0, n)}…(${text.length} chars)` : text);
};

/** A reply line: JSON, the protocol's shape, errors on one line and not a stack trace. */
function checkReply(line: string, label: string): WireReply {
  let value: unknown;
  try {
    value = JSON.parse(line);
  } catch {
    assert.fail(`${label}: the daemon sent a line that is not JSON: ${preview(line)}`);
  }
  assert.ok(
    typeof value === 'object' && value !== null && !Array.isArray(value),
    `${label}: reply is not an object: ${preview(line)}`,
  );
  const r = value as Record<string, unknown>;
  assert.equal(typeof r.ok, 'boolean', `${label}: reply without a boolean ok: ${preview(line)}`);
  if (r.ok === true) {
    assert.equal(typeof r.id, 'number', `${label}: ok reply without a numeric id: ${preview(line)}`);
    assert.ok(
      Object.keys(r).every((k) => ['id', 'ok', 'data'].includes(k)),
      `${label}: unexpected keys in ${preview(line)}`,
    );
  } else {
    assert.ok(r.id === null || typeof r.id === 'number', `${label}: bad id in ${preview(line)}`);
    assert.deepEqual(Object.keys(r).sort(), ['error', 'id', 'ok'], `${label}: keys of ${preview(line)}`);
    const error = r.error;
    assert.ok(typeof error === 'string' && error.length > 0, `${label}: empty error in ${preview(line)}`);
    // One line (no control characters at all, so no stack trace either), and no internal error.
    // biome-ignore lint/suspicious/noControlCharactersInRegex: control characters are what is checked
    assert.doesNotMatch(error, /[\u0000-\u001f\u007f]/, `${label}: error not on one line: ${preview(error)}`);
    assert.doesNotMatch(error, /internal error|^\w*Error: |\n\s+at /, `${label}: ${preview(error)}`);
  }
  return r as unknown as WireReply;
}

type Ending =
  /** Wait for this many replies, then hang up. The daemon closing first is a failure. */
  | { kind: 'replies'; count: number }
  /** Wait for the daemon to close the connection; `first` checks the first reply at once. */
  | { kind: 'close'; first?: (r: WireReply) => void }
  /** Hang up right after the last write (or, with `flushed: false`, without waiting for it). */
  | { kind: 'destroy'; flushed?: boolean }
  /** Half-close after the last write: replies may come, the daemon must then close. */
  | { kind: 'half-close' };

interface Outcome {
  replies: WireReply[];
  closedByDaemon: boolean;
}

function converse(ipcFile: string, writes: Buffer[], ending: Ending, label: string): Promise<Outcome> {
  return new Promise((resolve, reject) => {
    const socket = net.connect(ipcFile);
    const decoder = new StringDecoder('utf8');
    const replies: WireReply[] = [];
    let line = '';
    let settled = false;
    const finish = (err?: Error, closedByDaemon = false) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      socket.destroy();
      if (err) reject(err);
      else resolve({ replies, closedByDaemon });
    };
    const timer = setTimeout(
      () =>
        finish(
          new Error(
            `${label}: the daemon neither answered nor closed within ${HANG_MS} ms ` +
              `(waiting for ${JSON.stringify(ending)}, ${replies.length} replies so far)`,
          ),
        ),
      HANG_MS,
    );
    socket.on('error', (err) => finish(new Error(`${label}: ${err.message}`)));
    socket.on('data', (chunk) => {
      line += decoder.write(chunk);
      const lines = line.split('\n');
      line = lines.pop()!;
      for (const l of lines) {
        try {
          const reply = checkReply(l, label);
          if (ending.kind === 'close' && replies.length === 0) ending.first?.(reply);
          replies.push(reply);
        } catch (err) {
          finish(err as Error);
          return;
        }
      }
      if (ending.kind === 'replies' && replies.length >= ending.count) finish();
    });
    socket.on('close', () => {
      if (settled) return;
      if (line !== '')
        finish(new Error(`${label}: the daemon closed in the middle of a line: ${preview(line)}`));
      else if (ending.kind === 'replies') {
        finish(
          new Error(
            `${label}: the daemon closed after ${replies.length} of ${ending.count} expected replies`,
          ),
        );
      } else finish(undefined, true);
    });
    socket.on('connect', async () => {
      try {
        for (const [i, chunk] of writes.entries()) {
          const last = i === writes.length - 1;
          if (last && ending.kind === 'destroy' && ending.flushed === false) {
            socket.write(chunk);
            break;
          }
          // The callback means the bytes reached the kernel, so a split write really is two writes.
          await new Promise<void>((res, rej) => socket.write(chunk, (err) => (err ? rej(err) : res())));
        }
      } catch (err) {
        finish(new Error(`${label}: write failed: ${(err as Error).message}`));
        return;
      }
      if (ending.kind === 'destroy') finish();
      else if (ending.kind === 'half-close') socket.end();
      else if (ending.kind === 'replies' && ending.count === 0) finish();
    });
  });
}

/** The replies of a connection match the expected ones, as multisets of (id, ok). */
function assertMatches(replies: WireReply[], expected: Expected[], label: string): void {
  const key = (x: { id: number | null; ok: boolean }) => `${x.ok ? 'ok' : 'err'}:${x.id}`;
  assert.deepEqual(
    replies.map(key).sort(),
    expected.map(key).sort(),
    `${label}: replies do not match frames`,
  );
}

// ---------------------------------------------------------------------------------------------
// Generators.

const ACTING_BAD = [
  (id: string) => `{"id":${id},"type":"restart","data":{"suspended":"yes"}}`,
  (id: string) => `{"id":${id},"type":"start","data":{"maxAttempts":0}}`,
  (id: string) => `{"id":${id},"type":"restart","data":[]}`,
  (id: string) => `{"id":${id},"type":"set-workers","data":{"count":0}}`,
  (id: string) => `{"id":${id},"type":"set-workers","data":{"count":"2"}}`,
  (id: string) => `{"id":${id},"type":"set-standby"}`,
  (_: string) => '{"id":"1","type":"stop"}',
  (_: string) => '{"id":1.5,"type":"terminate"}',
  (_: string) => '{"type":"stop"}',
  (id: string) => `{"id":${id},"type":"stop","force":true}`,
];

const GOOD_IDS = [
  '0',
  '1',
  '-1',
  '-0',
  '7',
  '2147483647',
  '-2147483648',
  '9007199254740991',
  '-9007199254740991',
];
const BAD_IDS = [
  '1.5',
  '"1"',
  'null',
  'true',
  '[]',
  '{}',
  '1e300',
  '-1e300',
  '1e400',
  '9007199254740993',
  '123456789012345678901234567890',
  '"9007199254740993"',
];
const UNKNOWN_TYPES = [
  'STATUS',
  'Status',
  ' status',
  'status ',
  '',
  'toString',
  '__proto__',
  'constructor',
  'hasOwnProperty',
  'valueOf',
  'kill',
  'exec',
  'st\u0000atus',
  'sta\ntus',
  '\u001b[31mred',
  '😀',
  'stätus',
];
const EXTRA_KEYS = [
  'x',
  'data',
  '__proto__',
  'constructor',
  'id2',
  'a\nb',
  '\u0000',
  '',
  '\r\n  at evil (x.js:1:1)',
];

const goodId = (rng: Rng): string => (rng.chance(0.3) ? String(rng.int(1, 1_000_000)) : rng.pick(GOOD_IDS));

function deep(rng: Rng, maxDepth: number): string {
  const depth = rng.int(1, maxDepth);
  return rng.chance(0.5)
    ? `${'{"a":'.repeat(depth)}1${'}'.repeat(depth)}`
    : `${'['.repeat(depth)}${']'.repeat(depth)}`;
}

function randomValue(rng: Rng, small: boolean): string {
  return rng.pick([
    () => 'null',
    () => String(rng.next() * 1e6),
    () => JSON.stringify('x'.repeat(rng.int(0, small ? 100 : 200_000))),
    () => '{}',
    () => '[1,"a",null]',
    () => deep(rng, small ? 40 : 60_000),
    () => '{"suspended":true}',
  ])();
}

/** One frame of JSON (or near-JSON) text without its newline; only status/config are valid. */
function shape(rng: Rng, small: boolean): string {
  const id = goodId(rng);
  const safe = rng.pick(SAFE_TYPES);
  const cases: (() => string)[] = [
    // Valid status/config, with the odd spelling JSON allows.
    () => `{"id":${id},"type":"${safe}"}`,
    () => `{ "type" : "${safe}" ,\t"id" : ${id} }`,
    () => `{"id":${id},"type":"${safe.replace('t', '\\u0074')}"}`,
    // Not objects.
    () =>
      rng.pick([
        '[]',
        '[1,2,3]',
        '[{"id":1,"type":"status"}]',
        '0',
        '-1',
        '3.14',
        '1e400',
        '"status"',
        '""',
        'null',
        'true',
        'false',
        '{}',
      ]),
    // Unknown types, wrong field types, missing fields.
    () => `{"id":${id},"type":${JSON.stringify(rng.pick(UNKNOWN_TYPES))}}`,
    () => `{"id":${id},"type":${JSON.stringify('t'.repeat(rng.int(1, small ? 200 : 200_000)))}}`,
    () => `{"id":${rng.pick(BAD_IDS)},"type":"${safe}"}`,
    () => `{"id":${id},"type":${rng.pick(['1', 'null', '[]', '{}', 'true', '["status"]', '{"status":1}'])}}`,
    () => rng.pick(['{"type":"status"}', `{"id":${id}}`, '{"ID":1,"TYPE":"status"}']),
    // Extra fields, acting types made invalid.
    () =>
      `{"id":${id},"type":"${rng.pick([...SAFE_TYPES, ...ACTING_TYPES])}",${JSON.stringify(rng.pick(EXTRA_KEYS))}:${randomValue(rng, small)}}`,
    () => rng.pick(ACTING_BAD)(id),
    // Deep nesting anywhere.
    () => `{"id":${id},"type":${deep(rng, small ? 40 : 60_000)}}`,
    () => `{"id":${deep(rng, small ? 40 : 60_000)},"type":"${safe}"}`,
    () => `{"id":${id},"type":"restart","data":${deep(rng, small ? 40 : 60_000)}}`,
    () => deep(rng, small ? 40 : 60_000),
    // Duplicate keys (the last wins), prototype keys.
    () => `{"id":${id},"type":"${rng.pick(ACTING_TYPES)}","type":"${safe}"}`,
    () => `{"id":"x","id":${id},"type":"${safe}"}`,
    () =>
      rng.pick([
        '{"__proto__":{"type":"status"},"id":1}',
        `{"id":${id},"type":"status","__proto__":{"isAdmin":true}}`,
        '{"constructor":{"prototype":{"x":1}},"id":1,"type":"status"}',
      ]),
    // Broken JSON, raw control characters, a BOM.
    () =>
      rng.pick([
        `{"id":${id},"type":"${safe}"}}`,
        `{"id":${id},"type":"${safe}"} x`,
        `{"id":${id},"type":"${safe}",}`,
        "{'id':1,'type':'status'}",
        `{"id":${id},"type":"${safe}"`,
        `\ufeff{"id":${id},"type":"${safe}"}`,
        'NaN',
        'undefined',
        `{"id":01,"type":"${safe}"}`,
        '{"id":1,"type":"stat\u0000us"}',
        '\u001b[2J\u001b[31m{"id":1}',
        `{"id":${id},"type":"${safe}"}\r\r`,
      ]),
  ];
  return rng.pick(cases)();
}

/** A shape that is not a valid acting request (the oracle has the last word). */
function safeShape(rng: Rng, small: boolean): string {
  for (;;) {
    const frame = shape(rng, small);
    if (!oracle(frame)?.acting) return frame;
  }
}

function randomBytes(rng: Rng): Buffer {
  if (rng.chance(0.5)) {
    // Mutate a few bytes of some frames.
    const base = Buffer.from(
      Array.from({ length: rng.int(1, 4) }, () => `${safeShape(rng, true)}\n`).join(''),
      'utf8',
    );
    for (let i = rng.int(1, 6); i > 0; i--) base[rng.int(0, base.length - 1)] = rng.int(0, 255);
    return base;
  }
  const out = Buffer.alloc(rng.int(1, 2048));
  for (let i = 0; i < out.length; i++) {
    const r = rng.next();
    out[i] =
      r < 0.05
        ? 0x0a
        : r < 0.1
          ? 0x00
          : r < 0.2
            ? rng.pick([0xff, 0xfe, 0xc0, 0xc3, 0xe2, 0xf0, 0x80, 0xbf, 0x0d, 0x7b, 0x7d, 0x22, 0x5b, 0x20])
            : rng.int(0, 255);
  }
  return out;
}

const separator = (rng: Rng): string => rng.pick(['\n', '\n', '\r\n', '\n\n', '\n \t\n']);

// ---------------------------------------------------------------------------------------------

describe('LineFramer', () => {
  test('splits frames, keeps a partial one for the next chunk, skips blank lines', () => {
    const f = new LineFramer();
    assert.deepEqual(f.push(Buffer.from('{"a":1}\n\n  \n{"b"')), ['{"a":1}']);
    assert.deepEqual(f.push(Buffer.from(':2}\n{"c":3}\n')), ['{"b":2}', '{"c":3}']);
    assert.deepEqual(f.push(Buffer.from('')), []);
  });

  test('a multi-byte UTF-8 character split across two chunks at every byte comes out whole', () => {
    for (const char of ['é', '€', '😀']) {
      const bytes = Buffer.from(`{"type":"x${char}y"}\n`);
      const start = bytes.indexOf(Buffer.from(char));
      for (let cut = start + 1; cut < start + Buffer.byteLength(char); cut++) {
        const f = new LineFramer();
        assert.deepEqual(f.push(bytes.subarray(0, cut)), []);
        assert.deepEqual(f.push(bytes.subarray(cut)), [`{"type":"x${char}y"}`], `${char} cut at ${cut}`);
      }
      // One byte per chunk, too.
      const f = new LineFramer();
      const frames = [...bytes].flatMap((b) => f.push(Buffer.from([b])));
      assert.deepEqual(frames, [`{"type":"x${char}y"}`]);
    }
  });

  test('CRLF or LF: the same JSON values, even with the CR and LF in different chunks', () => {
    const lf = new LineFramer().push(Buffer.from('{"id":1}\n{"id":2}\n'));
    const crlf = new LineFramer().push(Buffer.from('{"id":1}\r\n{"id":2}\r\n'));
    assert.deepEqual(
      crlf.map((s) => JSON.parse(s)),
      lf.map((s) => JSON.parse(s)),
    );
    const split = new LineFramer();
    assert.deepEqual(split.push(Buffer.from('{"id":3}\r')), []);
    assert.deepEqual(
      split.push(Buffer.from('\n\r\n')).map((s) => JSON.parse(s)),
      [{ id: 3 }],
      'a bare CRLF line is blank',
    );
  });

  test('invalid UTF-8 and NUL bytes do not throw', () => {
    const f = new LineFramer();
    assert.deepEqual(f.push(Buffer.from([0xff, 0xc3, 0x0a, 0x00, 0x41, 0x0a])), ['\ufffd\ufffd', '\u0000A']);
  });

  test('the limit is in bytes: a frame over it throws FrameTooLargeError, one at it does not', () => {
    const ascii = new LineFramer(10);
    assert.deepEqual(ascii.push(Buffer.from(`${'a'.repeat(10)}\n`)), ['a'.repeat(10)]);
    assert.throws(() => ascii.push(Buffer.from(`${'a'.repeat(11)}\n`)), FrameTooLargeError);
    // Multi-byte characters count by their UTF-8 bytes, not by their JavaScript length.
    for (const [char, fits] of [
      ['é', 5],
      ['€', 3],
      ['😀', 2],
    ] as const) {
      const f = new LineFramer(10);
      assert.deepEqual(f.push(Buffer.from(`${char.repeat(fits)}\n`)), [char.repeat(fits)]);
      assert.throws(
        () => f.push(Buffer.from(`${char.repeat(fits + 1)}\n`)),
        FrameTooLargeError,
        `${fits + 1} × ${char} is over 10 bytes`,
      );
    }
    // A frame still arriving throws as soon as it is over the limit, without waiting for its end.
    const pending = new LineFramer(10);
    assert.deepEqual(pending.push(Buffer.from('a'.repeat(10))), []);
    assert.throws(() => pending.push(Buffer.from('a')), FrameTooLargeError);
    assert.throws(() => new LineFramer(10).push(Buffer.from('€'.repeat(4))), FrameTooLargeError);
    assert.equal(new LineFramer().push(Buffer.from(`${'a'.repeat(MAX_FRAME_BYTES)}\n`)).length, 1);
    assert.throws(
      () => new LineFramer().push(Buffer.from('a'.repeat(MAX_FRAME_BYTES + 1))),
      FrameTooLargeError,
    );
  });

  test('after an oversized frame the framer keeps nothing of it and goes on splitting', () => {
    // It cannot tell where the oversized frame ends (the rest of it comes out as a frame of its
    // own), which is why the server answers the error and closes the connection: see below.
    const f = new LineFramer(10);
    assert.throws(() => f.push(Buffer.from('a'.repeat(20))), FrameTooLargeError);
    const frames = f.push(Buffer.from('tail\n{"id":2}\n'));
    assert.equal(frames.at(-1), '{"id":2}');
    assert.ok(frames.every((s) => s.length <= 10));
    assert.deepEqual(f.push(Buffer.from('{"id":3}\n')), ['{"id":3}']);
  });
});

describe('control socket under hostile input', () => {
  let app: AppDir;
  let daemon: Daemon | undefined;
  let pidsBefore: number[] = [];

  before(async () => {
    app = makeApp({ workers: 2 });
    daemon = await Daemon.start(['daemon', '-c', app.configFile], app.ipcFile, { online: 2 });
    pidsBefore = await daemon.slotPids();
    assert.equal(pidsBefore.length, 2);
  });

  after(async () => {
    await teardown(daemon, app);
  });

  const noInternalError = () =>
    assert.doesNotMatch(daemon!.output, /internal error/, `daemon output:\n${daemon!.output}`);

  const send = (frames: string, count: number, label: string) =>
    converse(app.ipcFile, [Buffer.from(frames)], { kind: 'replies', count }, label);

  test('deeply nested values get an error reply, not an internal error', async () => {
    const depth = 100_000;
    const nested = [
      `{"id":1,"type":${'['.repeat(depth)}${']'.repeat(depth)}}`,
      `{"id":2,"type":${'{"a":'.repeat(depth)}1${'}'.repeat(depth)}}`,
      `{"id":3,"type":"status","x":${'{"a":'.repeat(depth)}1${'}'.repeat(depth)}}`,
      `${'['.repeat(depth)}${']'.repeat(depth)}`,
    ];
    const { replies } = await send(`${nested.join('\n')}\n`, nested.length, 'deep');
    assert.deepEqual(
      replies.map((r) => r.id).sort(),
      [1, 2, 3, null].sort(),
      'one error reply per frame, with its id',
    );
    assert.ok(replies.every((r) => !r.ok));
    noInternalError();
  });

  test('error messages about peer input stay on one line', async () => {
    const frames = [
      '{"id":1,"type":"status","a\\nb":1}',
      '{"id":2,"type":"restart","data":{"x\\r\\ny":1}}',
      'abc\r\u0000\u001b[31m',
      '{"id":4,"type":"sta\\ntus"}',
      // DEL is a control character JSON.stringify leaves as it is (seed 4115971307 found it).
      '{"id":5,"type":"sta\u007fus"}',
    ];
    const { replies } = await send(`${frames.join('\n')}\n`, frames.length, 'one line');
    assert.equal(replies.length, 5);
  });

  test('a character split across two writes reaches the daemon whole', async () => {
    const bytes = Buffer.from('{"id":5,"type":"st€tus"}\n');
    const cut = bytes.indexOf(Buffer.from('€')) + 1;
    const { replies } = await converse(
      app.ipcFile,
      [bytes.subarray(0, cut), bytes.subarray(cut)],
      { kind: 'replies', count: 1 },
      'split',
    );
    assert.deepEqual(replies, [{ id: 5, ok: false, error: 'unknown request type "st€tus"' }]);
  });

  test('an oversized frame gets one error and the connection is closed; the next connection works', async () => {
    const big = [
      ['without a newline', 'a'.repeat(MAX_FRAME_BYTES + 1)],
      ['with a newline', `{"id":1,"type":"${'a'.repeat(MAX_FRAME_BYTES)}"}\n{"id":2,"type":"status"}\n`],
      ['of 3-byte characters', `{"id":1,"type":"${'€'.repeat(MAX_FRAME_BYTES / 2)}"}\n`],
      ['of 4-byte characters', `{"id":1,"type":"${'😀'.repeat(Math.ceil(MAX_FRAME_BYTES / 3))}"}\n`],
    ];
    for (const [what, payload] of big) {
      const { replies, closedByDaemon } = await converse(
        app.ipcFile,
        [Buffer.from(payload!)],
        { kind: 'close', first: (r) => assert.match(r.error ?? '', /^frame larger than/, what) },
        `oversize ${what}`,
      );
      assert.ok(closedByDaemon);
      assert.deepEqual(
        replies,
        [{ id: null, ok: false, error: `frame larger than ${MAX_FRAME_BYTES} bytes` }],
        what,
      );
    }
    const { replies } = await send('{"id":9,"type":"status"}\n', 1, 'after oversize');
    assert.equal(replies[0]?.ok, true);
    noInternalError();
  });

  test('a worker-hello upgrades only as the first frame; an unknown worker is refused and cut off', async () => {
    const hello = (id: number) =>
      `{"id":${id},"type":"worker-hello","data":{"workerId":"w00000000","pid":1}}`;
    const late = await send(`{"id":1,"type":"status"}\n${hello(2)}\n`, 2, 'late hello');
    assert.deepEqual(
      late.replies.filter((r) => r.id === 2),
      [{ id: 2, ok: false, error: 'worker-hello must be the first frame on a connection' }],
    );
    assert.ok(late.replies.some((r) => r.id === 1 && r.ok));
    // Refused: one error, then the daemon closes and reads nothing more (the status is not answered).
    const { replies, closedByDaemon } = await converse(
      app.ipcFile,
      [Buffer.from(`${hello(3)}\n{"id":4,"type":"status"}\n`)],
      { kind: 'close' },
      'unknown worker',
    );
    assert.ok(closedByDaemon);
    assert.deepEqual(replies, [{ id: 3, ok: false, error: 'unknown worker w00000000 (pid 1)' }]);
    noInternalError();
  });

  test(`fuzz: ${ATTACKERS} attackers for ${FUZZ_MS} ms (seed ${SEED})`, async (t) => {
    const d = daemon!;
    const ipc = app.ipcFile;
    const counts = new Map<string, number>();
    const stats = { frames: 0, replies: 0, okReplies: 0, errorReplies: 0, closedByDaemon: 0, legit: 0 };
    const seedRng = prng(SEED);
    // Half the seeds send real restarts (at most two), the other half check the pids stay put.
    const restartsAllowed = seedRng.chance(0.5);
    let restartsSent = 0;
    let connections = 0;
    const deadline = Date.now() + FUZZ_MS;
    const more = () => Date.now() < deadline && connections < MAX_CONNECTIONS;

    const attacker = async (index: number) => {
      const rng = prng((SEED ^ Math.imul(index + 1, 0x9e3779b9)) >>> 0);
      let restartBudget = restartsAllowed && index < 2 ? 1 : 0;
      let oversizeBudget = MAX_OVERSIZE_PER_ATTACKER;
      for (let n = 0; more(); n++) {
        connections++;
        let kind = rng.pick([
          ...Array<string>(14).fill('random-bytes'),
          ...Array<string>(20).fill('wrong-shape'),
          ...Array<string>(8).fill('split-utf8'),
          ...Array<string>(8).fill('half-frame-destroy'),
          ...Array<string>(3).fill('oversize'),
          ...Array<string>(10).fill('pipelined'),
          ...Array<string>(8).fill('vanish'),
          ...Array<string>(6).fill('half-close'),
          ...Array<string>(3).fill('connect-only'),
          'restart-vanish',
        ]);
        if (kind === 'oversize' && oversizeBudget === 0) kind = 'wrong-shape';
        if (kind === 'restart-vanish' && restartBudget === 0) kind = 'vanish';
        const label = `${kind} #${n} of attacker ${index} (seed ${SEED})`;
        let writes: Buffer[];
        let ending: Ending;
        let expected: Expected[] | undefined;
        switch (kind) {
          case 'random-bytes': {
            let payload = randomBytes(rng);
            while (expectations(payload).some((e) => e.acting)) payload = randomBytes(rng);
            // Half the time a status probe after a newline shows the connection still serves.
            if (rng.chance(0.5))
              payload = Buffer.concat([payload, Buffer.from(`\n{"id":4242,"type":"status"}\n`)]);
            writes = [payload];
            expected = expectations(payload);
            ending = { kind: 'replies', count: expected.length };
            break;
          }
          case 'wrong-shape':
          case 'pipelined': {
            const count = kind === 'pipelined' ? rng.int(2, 300) : rng.int(1, 3);
            let text = '';
            for (let i = 0; i < count; i++) text += safeShape(rng, kind === 'pipelined') + separator(rng);
            const payload = Buffer.from(text);
            writes = [payload];
            expected = expectations(payload);
            ending = { kind: 'replies', count: expected.length };
            break;
          }
          case 'split-utf8': {
            const char = rng.pick(['é', '€', '😀', '\u0800', '\uffff']);
            const frame = rng.chance(0.5)
              ? `{"id":${goodId(rng)},"type":"st${char}tus"}`
              : `{"id":${goodId(rng)},"type":"${rng.pick(SAFE_TYPES)}","${char}":1}`;
            const bytes = Buffer.from(`${frame}\n`);
            const at = bytes.indexOf(Buffer.from(char));
            const cut = rng.int(at + 1, at + Buffer.byteLength(char) - 1);
            writes = [bytes.subarray(0, cut), bytes.subarray(cut)];
            expected = expectations(bytes);
            ending = { kind: 'replies', count: 1 };
            break;
          }
          case 'half-frame-destroy': {
            const bytes = Buffer.from(rng.chance(0.5) ? `{"id":1,"type":"st😀tus"}` : safeShape(rng, true));
            writes = [bytes.subarray(0, rng.int(1, Math.max(1, bytes.length - 1)))];
            ending = { kind: 'destroy', flushed: rng.chance(0.5) };
            break;
          }
          case 'oversize': {
            oversizeBudget--;
            const extra = rng.int(1, 65_536);
            const variant = rng.int(0, 3);
            const body = [
              () => 'a'.repeat(MAX_FRAME_BYTES + extra),
              () => `{"id":1,"type":"${'a'.repeat(MAX_FRAME_BYTES + extra)}"}\n{"id":2,"type":"status"}\n`,
              () => `{"id":1,"type":"${'€'.repeat(Math.ceil(MAX_FRAME_BYTES / 3) + extra)}"}\n`,
              () => `${safeShape(rng, true)}\n${'\u0000'.repeat(MAX_FRAME_BYTES + extra)}`,
            ][variant]!();
            const payload = Buffer.from(body);
            const cut = rng.chance(0.5) ? rng.int(1, payload.length - 1) : payload.length;
            writes = cut < payload.length ? [payload.subarray(0, cut), payload.subarray(cut)] : [payload];
            // A small frame before it is answered, then comes the error for the big one.
            const leading =
              variant === 3 ? expectations(Buffer.from(body.slice(0, body.indexOf('\n') + 1))) : [];
            ending = {
              kind: 'close',
              first: (r) => {
                if (leading.length === 0) assert.match(r.error ?? '', /^frame larger than/, label);
              },
            };
            expected = [...leading, { id: null, ok: false, acting: false }];
            break;
          }
          case 'vanish': {
            const frames = Array.from({ length: rng.int(1, 5) }, () =>
              rng.chance(0.7)
                ? `{"id":${goodId(rng)},"type":"${rng.pick(SAFE_TYPES)}"}`
                : safeShape(rng, true),
            );
            writes = [Buffer.from(frames.map((f) => `${f}\n`).join(''))];
            ending = { kind: 'destroy', flushed: rng.chance(0.7) };
            break;
          }
          case 'half-close': {
            const frames = Array.from({ length: rng.int(1, 5) }, () => safeShape(rng, true));
            const payload = Buffer.from(frames.map((f) => `${f}\n`).join(''));
            writes = [payload];
            expected = expectations(payload);
            ending = { kind: 'half-close' };
            break;
          }
          case 'connect-only':
            writes = [];
            ending = rng.chance(0.5) ? { kind: 'destroy' } : { kind: 'half-close' };
            break;
          case 'restart-vanish':
            restartBudget--;
            restartsSent++;
            writes = [Buffer.from(`{"id":${goodId(rng)},"type":"restart"}\n`)];
            ending = { kind: 'destroy' };
            break;
          default:
            assert.fail(`unknown attack ${kind}`);
        }
        counts.set(kind, (counts.get(kind) ?? 0) + 1);
        stats.frames += expected?.length ?? 0;
        const outcome = await converse(ipc, writes, ending, label);
        if (outcome.closedByDaemon) stats.closedByDaemon++;
        stats.replies += outcome.replies.length;
        stats.okReplies += outcome.replies.filter((r) => r.ok).length;
        stats.errorReplies += outcome.replies.filter((r) => !r.ok).length;
        if (ending.kind === 'replies') assertMatches(outcome.replies, expected!, label);
        if (ending.kind === 'close') {
          assert.ok(outcome.closedByDaemon, `${label}: the daemon did not close`);
          assertMatches(outcome.replies, expected!, label);
        }
        if (ending.kind === 'half-close' && expected) {
          // Replies may be cut short by the hang-up, but those that come are the right ones.
          const left = expected.map((e) => `${e.ok}:${e.id}`);
          for (const r of outcome.replies) {
            const i = left.indexOf(`${r.ok}:${r.id}`);
            assert.ok(i >= 0, `${label}: unexpected reply ${JSON.stringify(r).slice(0, 200)}`);
            left.splice(i, 1);
          }
        }
        for (const r of outcome.replies) {
          if (!r.ok) continue;
          const data = r.data as Record<string, unknown>;
          assert.ok(
            ('pid' in data && data.pid === d.child.pid && Array.isArray(data.workers)) || 'config' in data,
            `${label}: ok reply that is neither status nor config: ${JSON.stringify(r).slice(0, 200)}`,
          );
        }
      }
    };

    // A well-behaved client keeps getting answers throughout.
    const legit = async () => {
      while (more()) {
        const s = await request(ipc, 'status', undefined, { timeoutMs: HANG_MS });
        assert.equal(s.pid, d.child.pid);
        stats.legit++;
      }
    };

    await Promise.all([...Array.from({ length: ATTACKERS }, (_, i) => attacker(i)), legit()]);

    t.diagnostic(`seed ${SEED}; real restarts ${restartsAllowed ? 'allowed' : 'not sent'}: ${restartsSent}`);
    t.diagnostic(`connections ${connections}: ${JSON.stringify(Object.fromEntries([...counts].sort()))}`);
    t.diagnostic(
      `frames ${stats.frames}, replies ${stats.replies} (ok ${stats.okReplies}, error ${stats.errorReplies}), ` +
        `closed by the daemon ${stats.closedByDaemon}, legit status requests ${stats.legit}`,
    );

    // The daemon is alive, answers, and serves with the same number of workers.
    assert.equal(d.child.exitCode, null, `daemon exited:\n${d.output}`);
    assert.equal(d.child.signalCode, null);
    await waitFor('two serving workers and nothing else (restarts finished, old workers gone)', async () => {
      const s = await d.status();
      return s.workers.length === 2 && s.workers.every((w) => w.role === 'serving' && w.state === 'online');
    });
    const status = await d.status();
    assert.equal(status.pid, d.child.pid);
    const pids = await d.slotPids();
    assert.equal(pids.length, 2);
    if (restartsSent === 0) assert.deepEqual(pids, pidsBefore, 'no restart was sent: the same workers serve');
    for (const slot of [0, 1]) {
      const body = await getJson<{ pid: number; index: string }>({ socketPath: app.published(slot) });
      assert.equal(body.index, String(slot));
      assert.equal(body.pid, pids[slot]);
    }
    noInternalError();
  });
});
