/**
 * Handle passing on its own (src/net/handoff.ts): a socket goes to a child, which serves it
 * directly; a socket a child refuses, or that a dead child never took, stays whole on the
 * sender's side and can go to another child.
 */
import assert from 'node:assert/strict';
import { type ChildProcess, fork } from 'node:child_process';
import { once } from 'node:events';
import net from 'node:net';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { HandoffSender } from '../src/index.js';
import { ensureBuilt, FIXTURES } from './fixtures/pool/harness.js';

before(() => ensureBuilt());

const children: ChildProcess[] = [];
after(() => {
  for (const c of children) c.kill('SIGKILL');
});

async function child(refuse: boolean): Promise<ChildProcess> {
  const c = fork(path.join(FIXTURES, 'handoff-child.js'), [], {
    env: { ...process.env, REFUSE: refuse ? '1' : '0' },
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
  });
  children.push(c);
  await once(c, 'message');
  return c;
}

/** A front that hands every accepted socket to `handle`, and one client connection to it. */
async function connection(
  handle: (socket: net.Socket) => void,
): Promise<{ client: net.Socket; reply: Promise<string>; close: () => void }> {
  const server = net.createServer({ pauseOnConnect: true }, handle);
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const address = server.address() as net.AddressInfo;
  const client = net.connect(address.port, '127.0.0.1');
  let data = '';
  client.on('data', (c: Buffer) => {
    data += c.toString();
  });
  const reply = once(client, 'end').then(() => data);
  return { client, reply, close: () => server.close() };
}

test('a handed-over socket is served by the child, which sees the client', async () => {
  const sender = new HandoffSender(await child(false));
  let sent: Promise<void> | undefined;
  const { client, reply, close } = await connection((socket) => {
    sent = sender.send(socket, { tag: 'first' });
  });
  try {
    await once(client, 'connect');
    assert.match(await reply, new RegExp(`for first; client port ${client.localPort}$`));
    // The child's answer can reach the client before its confirmation reaches the sender.
    await sent;
    assert.equal(sender.inFlight, 0);
  } finally {
    close();
  }
});

test('a socket one child refuses, or a dead child never took, goes to another child whole', async () => {
  const refusing = new HandoffSender(await child(true));
  const dying = await child(false);
  const dead = new HandoffSender(dying);
  dying.kill('SIGKILL');
  await once(dying, 'exit');
  const good = new HandoffSender(await child(false));
  const outcomes: string[] = [];
  const { reply, close } = await connection((socket) => {
    void (async () => {
      await refusing.send(socket, { tag: 'a' }).catch((err: Error) => outcomes.push(err.message));
      await dead.send(socket, { tag: 'b' }).catch((err: Error) => outcomes.push(err.message));
      await good.send(socket, { tag: 'c' });
    })();
  });
  try {
    assert.match(await reply, /for c;/);
    assert.equal(outcomes.length, 2);
    assert.match(outcomes[0], /refused by the fixture/);
    assert.match(outcomes[1], /exited|closed/);
  } finally {
    close();
  }
});
