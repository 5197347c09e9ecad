// Descriptors the daemon could be made to hold: sent by a worker with its messages, or opened
// for health checks on behalf of probes (red team round three, P1-1 and P1-2).
import assert from 'node:assert/strict';
import fs from 'node:fs';
import net from 'node:net';
import { afterEach, test } from 'node:test';
import { type AppDir, makeApp, teardown } from './helpers/app';
import { Daemon } from './helpers/daemon';
import { freePort } from './helpers/nginx';
import { waitFor } from './helpers/wait';

let daemon: Daemon | undefined;
let app: AppDir;

afterEach(async () => {
  await teardown(daemon, app);
  daemon = undefined;
});

const fds = (pid: number) => fs.readdirSync(`/proc/${pid}/fd`).length;

test('descriptors a worker sends unasked (messages, forged handover moves) are closed by the daemon', async () => {
  app = makeApp({ workers: 1, env: ['HANDLES=200'] }, 'sends-handles.js');
  daemon = await Daemon.start(['daemon', '-c', app.configFile], app.ipcFile, { online: 1 });
  const pid = daemon.child.pid!;
  await daemon.waitOutput(/sent 200 descriptors/);
  // Kept, they would be 200 more; closed, the daemon is back near where it started.
  await waitFor('the daemon holding none of them', () => fds(pid) < 60);
});

test('a worker sending a descriptor that is not a socket (/dev/null, a directory) gets an error; the daemon lives on, holding none', async () => {
  app = makeApp({ workers: 1 }, 'sends-files.js');
  daemon = await Daemon.start(['daemon', '-c', app.configFile], app.ipcFile, { online: 1 });
  const pid = daemon.child.pid!;
  const before = fds(pid);
  await daemon.waitOutput(/a socket sent/);
  // Without the preload's guard the first /dev/null kills the daemon inside Node (stream_wrap.cc).
  assert.match(
    daemon.output,
    /refused \/dev\/null: nodesockd: process\.send\(\) refused a handle whose descriptor \d+ is a character device/,
  );
  assert.match(
    daemon.output,
    /refused \/tmp: nodesockd: process\.send\(\) refused a handle whose descriptor \d+ is a directory/,
  );
  assert.doesNotMatch(daemon.output, /sent \/(dev|tmp)/);
  assert.equal(daemon.child.exitCode, null);
  const s = await daemon.status();
  assert.equal(s.workers[0]?.state, 'online');
  // The one socket it sent is closed by the daemon; none of the 200 refused ones reached it.
  await waitFor('the daemon back at its descriptor count', () => fds(pid) <= before);
});

test('forged internal messages (NODE_HANDLE_ACK, lines that are not JSON) are one line each per interval, with a count, no stack', async () => {
  app = makeApp({ workers: 1, env: ['FORGED=200'] }, 'forges-internal.js');
  daemon = await Daemon.start(['daemon', '-c', app.configFile], app.ipcFile, { online: 1 });
  const d = daemon;
  await d.waitOutput(/forged done/);
  // The count of each interval (10 s) comes in one more line.
  await d.waitOutput(
    /sent \d+ acknowledgements of a descriptor the daemon did not send \(NODE_HANDLE_ACK\); ignored in the last 10 s/,
  );
  await d.waitOutput(
    /a worker wrote \d+ lines that are not a message on its IPC channel; ignored in the last 10 s/,
  );
  const lines = (pattern: RegExp) => d.output.split('\n').filter((l) => pattern.test(l));
  // 200 of each, said in a few lines (the first at once, then one per 10 s).
  assert.ok(lines(/NODE_HANDLE_ACK/).length < 10, d.output);
  assert.ok(lines(/not a message on its IPC channel/).length < 10, d.output);
  assert.doesNotMatch(d.output, /internal error|ERR_INTERNAL_ASSERTION|SyntaxError|\n {4}at /);
  const s = await d.status();
  assert.equal(s.workers[0]?.state, 'online');
});

test('a pipelined flood of GET /readyz on one connection: one health check at a time, the rest 503 past 100', async () => {
  const port = await freePort();
  app = makeApp({ workers: 2, metrics: `127.0.0.1:${port}` }, 'lib.js');
  daemon = await Daemon.start(['daemon', '-c', app.configFile], app.ipcFile, { online: 2 });
  const pid = daemon.child.pid!;
  const before = fds(pid);
  let most = before;
  const sampler = setInterval(() => {
    most = Math.max(most, fds(pid));
  }, 5);
  const socket = net.connect(port, '127.0.0.1');
  let received = '';
  socket.setEncoding('latin1');
  socket.on('data', (chunk: string) => {
    received += chunk;
  });
  socket.on('error', () => undefined);
  socket.write('GET /readyz HTTP/1.1\r\nHost: x\r\n\r\n'.repeat(2000));
  try {
    await waitFor('the answers', () => (received.match(/^HTTP\/1\.1 /gm)?.length ?? 0) >= 100);
  } finally {
    clearInterval(sampler);
    socket.destroy();
  }
  assert.match(received, /^HTTP\/1\.1 200/m);
  // Each health check connects to each of the 2 slots: coalesced, a handful at once, not 2 × 2000.
  assert.ok(most < before + 50, `the daemon went from ${before} to ${most} descriptors`);
});
