/** The framed JSON connection every control-socket end speaks through, and the reply correlator. */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { FrameConnection } from '../src/ipc/connection';
import { FrameTooLargeError } from '../src/ipc/framing';
import { Correlator } from '../src/net/correlator';
import { makeTempDir } from './helpers/daemon';
import { waitFor } from './helpers/wait';

let dir: string;
let server: net.Server;
let socketPath: string;
/** The server side of the next connection. */
let accepted: (socket: net.Socket) => void = () => {};
const clients = new Set<net.Socket>();

before(async () => {
  dir = makeTempDir('nsd-conn-');
  socketPath = path.join(dir, 'test.sock');
  server = net.createServer((socket) => accepted(socket));
  await new Promise<void>((resolve) => server.listen(socketPath, resolve));
});

after(async () => {
  for (const raw of clients) raw.destroy();
  await new Promise<void>((resolve) => server.close(() => resolve()));
  fs.rmSync(dir, { recursive: true, force: true });
});

/** A raw client socket and the FrameConnection the server wrapped its end in. */
async function pair(maxBytes?: number): Promise<{ raw: net.Socket; connection: FrameConnection }> {
  const serverSide = new Promise<net.Socket>((resolve) => {
    accepted = resolve;
  });
  const raw = net.connect(socketPath);
  clients.add(raw);
  await new Promise<void>((resolve) => raw.once('connect', resolve));
  return { raw, connection: new FrameConnection(await serverSide, maxBytes) };
}

describe('FrameConnection', () => {
  test('decodes frames split anywhere, multi-byte characters included; a bad frame is reported on one line', async () => {
    const { raw, connection } = await pair();
    const frames: unknown[] = [];
    const invalid: string[] = [];
    connection.setHandlers({ frame: (v) => frames.push(v), invalid: (r) => invalid.push(r) });
    const bytes = Buffer.from('{"a":"€uro"}\n\nx\u0001y\n[1,2]\n');
    for (let i = 0; i < bytes.length; i += 3) raw.write(bytes.subarray(i, i + 3));
    await waitFor('the frames', () => frames.length === 2);
    assert.deepEqual(frames, [{ a: '€uro' }, [1, 2]]);
    assert.equal(invalid.length, 1);
    assert.match(invalid[0]!, /^invalid JSON: /);
    assert.match(invalid[0]!, /\\u0001/);
    raw.destroy();
  });

  test('frames behind a handover in the same chunk reach the new owner', async () => {
    const { raw, connection } = await pair();
    const first: unknown[] = [];
    const second: unknown[] = [];
    connection.setHandlers({
      frame: (v) => {
        first.push(v);
        connection.setHandlers({ frame: (w) => second.push(w) });
      },
    });
    raw.write('{"hello":1}\n{"n":1}\n{"n":2}\n');
    await waitFor('the frames', () => second.length === 2);
    assert.deepEqual(first, [{ hello: 1 }]);
    assert.deepEqual(second, [{ n: 1 }, { n: 2 }]);
    raw.destroy();
  });

  test('an overlong frame is reported, then nothing more is read and the connection ends', async () => {
    const { raw, connection } = await pair(64);
    const frames: unknown[] = [];
    let overflow: Error | undefined;
    connection.setHandlers({
      frame: (v) => frames.push(v),
      overflow: (err) => {
        overflow = err;
        connection.send({ error: err.message });
      },
    });
    let received = '';
    raw.on('data', (chunk) => {
      received += chunk.toString();
    });
    const closed = new Promise<void>((resolve) => raw.once('close', () => resolve()));
    raw.write('{"ok":1}\n');
    await waitFor('the first frame', () => frames.length === 1);
    raw.write(`"${'x'.repeat(100)}`);
    raw.write('\n{"late":1}\n');
    raw.end();
    await closed;
    assert.ok(overflow instanceof FrameTooLargeError);
    assert.deepEqual(frames, [{ ok: 1 }]);
    assert.equal(received, '{"error":"frame larger than 64 bytes"}\n');
  });

  test('sending to a peer that is gone sends nothing; a failed connect is reported on close', async () => {
    const { raw, connection } = await pair();
    const closed = new Promise<void>((resolve) => connection.onClose(() => resolve()));
    raw.destroy();
    await closed;
    assert.equal(connection.send({ late: true }), false);

    const refused = new FrameConnection(net.connect(path.join(dir, 'missing.sock')));
    const err = await new Promise<NodeJS.ErrnoException | null>((resolve) => refused.onClose(resolve));
    assert.equal(err?.code, 'ENOENT');
  });
});

describe('Correlator', () => {
  test('each request settles once: by its reply, its deadline or its peer going away', async () => {
    const c = new Correlator<string, string>();
    const a = c.open('peer-a');
    const b = c.open('peer-b', { ms: 1, outcome: () => 'timed out' });
    const a2 = c.open('peer-a');
    assert.notEqual(a.id, a2.id);
    assert.equal(c.peerOf(a.id), 'peer-a');
    assert.equal(c.settle(a.id, 'reply'), true);
    assert.equal(c.settle(a.id, 'again'), false, 'a late reply finds nothing');
    assert.equal(c.peerOf(a.id), undefined);
    c.settleWhere((peer) => peer === 'peer-a', 'gone');
    assert.deepEqual(await Promise.all([a.outcome, b.outcome, a2.outcome]), ['reply', 'timed out', 'gone']);
    assert.equal(c.settle(b.id, 'reply after the deadline'), false);
    assert.equal(c.settle(12345, 'unknown id'), false);
  });
});
