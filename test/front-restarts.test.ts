// Every zero-downtime path of the `listen` front (SPEC §6, issue 12), with GET+POST load
// straight at the port: `restart --suspended` then `resume`, a worker SIGKILLed mid-load,
// `set-workers` up and down, and a restart while kept-alive connections sit idle.
import assert from 'node:assert/strict';
import http from 'node:http';
import type net from 'node:net';
import { after, before, describe, test } from 'node:test';
import { type AppDir, makeApp, teardown } from './helpers/app';
import { Daemon } from './helpers/daemon';
import { httpRequest } from './helpers/http';
import { waitFor } from './helpers/wait';

/** What the fixture (front-serve.js) answers. */
interface Answer {
  id: string;
  suspended: boolean;
  length: number;
}

interface Outcome {
  kind: 'keep-alive' | 'new';
  method: 'GET' | 'POST';
  /** The load's phase (set by the test) when the request was started. */
  phase: number;
  /** The worker that served the previous request on this connection; null on a new connection. */
  on: string | null;
  answer?: Answer;
  error?: string;
}

function describeOutcome(o: Outcome): string {
  return `${o.kind} ${o.method} (phase ${o.phase}, connection on ${o.on ?? 'no worker yet'}): ${o.error}`;
}

/**
 * A bounded client loop straight at the port: `keepAlive` clients with one kept-alive
 * connection each (a new one when it closes) and `fresh` clients that open a new connection per
 * request, alternating GET and POST. A request fails when it is refused or reset, answers other
 * than 200, or its body is short (the JSON does not parse, or the POST body length is wrong).
 */
class FrontLoad {
  /** Set by the test to mark what each request was started after. */
  phase = 0;
  readonly outcomes: Outcome[] = [];
  private stopped = false;
  private readonly agents: http.Agent[] = [];
  private readonly workerOf = new WeakMap<net.Socket, string>();
  private readonly clients: Promise<void>;
  private readonly deadline: NodeJS.Timeout;

  constructor(
    private readonly port: number,
    { keepAlive = 3, fresh = 2, maxMs = 120_000 } = {},
  ) {
    // Bounded even if a test fails before it calls stop().
    this.deadline = setTimeout(() => {
      this.stopped = true;
    }, maxMs);
    this.deadline.unref();
    const loops: Promise<void>[] = [];
    for (let n = 0; n < keepAlive; n++) {
      const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
      this.agents.push(agent);
      loops.push(this.loop('keep-alive', n, agent));
    }
    for (let n = 0; n < fresh; n++) loops.push(this.loop('new', keepAlive + n, false));
    this.clients = Promise.all(loops).then(() => undefined);
  }

  ok(): number {
    return this.outcomes.filter((o) => o.answer).length;
  }

  failures(): Outcome[] {
    return this.outcomes.filter((o) => o.error !== undefined);
  }

  /** Waits until `n` more requests have been answered. */
  async flowing(what: string, n = 20): Promise<void> {
    const start = this.ok();
    await waitFor(what, () => this.ok() >= start + n, { timeoutMs: 30_000 });
  }

  async stop(): Promise<Outcome[]> {
    this.stopped = true;
    clearTimeout(this.deadline);
    await this.clients;
    for (const agent of this.agents) agent.destroy();
    return this.outcomes;
  }

  private async loop(kind: Outcome['kind'], n: number, agent: http.Agent | false): Promise<void> {
    for (let i = 0; !this.stopped; i++) {
      const method = (i + n) % 2 === 0 ? 'POST' : 'GET';
      const body = method === 'POST' ? `payload ${n}/${i} `.repeat(1 + (i % 50)) : '';
      const outcome: Outcome = { kind, method, phase: this.phase, on: null };
      this.outcomes.push(outcome);
      try {
        const { answer } = await this.request(method, body, agent, outcome);
        outcome.answer = answer;
      } catch (err) {
        outcome.error = (err as Error).message;
      }
    }
  }

  private request(
    method: 'GET' | 'POST',
    body: string,
    agent: http.Agent | false,
    outcome: Outcome,
  ): Promise<{ answer: Answer }> {
    return new Promise((resolve, reject) => {
      let socket: net.Socket | null = null;
      const req = http.request({ host: '127.0.0.1', port: this.port, method, agent }, (res) => {
        let text = '';
        res.setEncoding('utf8');
        res.on('data', (c: string) => {
          text += c;
        });
        res.on('error', reject);
        res.on('end', () => {
          if (res.statusCode !== 200) return reject(new Error(`HTTP ${res.statusCode}`));
          let answer: Answer;
          try {
            answer = JSON.parse(text) as Answer;
          } catch {
            return reject(new Error(`short body: ${JSON.stringify(text)}`));
          }
          if (answer.length !== Buffer.byteLength(body))
            return reject(
              new Error(`the app read ${answer.length} of ${Buffer.byteLength(body)} body bytes`),
            );
          if (socket) this.workerOf.set(socket, answer.id);
          resolve({ answer });
        });
      });
      req.on('socket', (s: net.Socket) => {
        socket = s;
        outcome.on = this.workerOf.get(s) ?? null;
      });
      req.on('error', reject);
      // A request nobody answers is a failure to report, not a test that never ends.
      req.setTimeout(30_000, () => req.destroy(new Error('no answer within 30 s')));
      req.end(body);
    });
  }
}

function frontPort(address: string | undefined): number {
  const port = Number(/:(\d+)$/.exec(address ?? '')?.[1]);
  assert.ok(port > 0, `front address ${address}`);
  return port;
}

async function servingIds(daemon: Daemon): Promise<string[]> {
  return (await daemon.status()).workers
    .filter((w) => w.role === 'serving')
    .sort((a, b) => (a.slot ?? 0) - (b.slot ?? 0))
    .map((w) => w.id);
}

/** Starts a daemon with the `listen` front on a free loopback port. */
async function startFront(workers: number, fixture = 'front-serve.js', config: Record<string, unknown> = {}) {
  const app = makeApp({ workers, listen: '127.0.0.1:0', shutdownTimeout: 30_000, ...config }, fixture);
  const daemon = await Daemon.start(['--config', app.configFile], app.ipcFile, { online: workers });
  const port = frontPort((await daemon.status()).front?.addresses[0]);
  return { app, daemon, port };
}

describe('listen: restart --suspended, then resume, under load at the port', () => {
  let app: AppDir;
  let daemon: Daemon;
  let port: number;
  before(async () => {
    ({ app, daemon, port } = await startFront(2));
  });
  after(() => teardown(daemon, app));

  test('the suspended workers take and hold the connections until resume: 0 failed', async (t) => {
    const old = await servingIds(daemon);
    let fresh: string[] = [];
    const load = new FrontLoad(port);
    try {
      await load.flowing('requests before the restart');
      const r = await daemon.cli(['restart', '--suspended'], { timeoutMs: 60_000 });
      assert.equal(r.code, 0, r.stderr);
      load.phase = 1;
      fresh = await servingIds(daemon);
      assert.equal(fresh.filter((id) => old.includes(id)).length, 0, 'a new generation serves');
      const states = (await daemon.status()).workers.filter((w) => fresh.includes(w.id)).map((w) => w.state);
      assert.deepEqual(states, ['suspended', 'suspended']);
      // The suspended workers take the connections (and hold their requests): new ones the
      // front hands them, rather than keeping them itself, where they would be closed after
      // NO_WORKER_GRACE_MS; kept-alive ones moved from the old worker of the same slot. Which
      // workers get them depends on where the kept-alive connections were.
      await waitFor('a connection held by the suspended generation', () =>
        fresh.some((id) => new RegExp(`connection while suspended on ${id}`).test(daemon.output)),
      );
      const s = await daemon.status();
      const handed = fresh.reduce((n, id) => n + (s.front?.handedOut[id] ?? 0), 0);
      assert.ok(handed + (s.handovers?.moved ?? 0) > 0, 'connections reached the suspended workers');
      assert.equal(
        load.outcomes.filter((o) => o.answer && fresh.includes(o.answer.id)).length,
        0,
        'nothing is answered by a suspended worker before resume',
      );
      load.phase = 2;
      const resumed = await daemon.cli(['resume']);
      assert.equal(resumed.code, 0, resumed.stderr);
      await load.flowing('requests after resume');
    } finally {
      // Failed before its resume, the test still lets the held requests go before it stops the load.
      if (load.phase < 2) await daemon.cli(['resume']).catch(() => undefined);
      await load.stop();
    }
    assert.deepEqual(load.failures().map(describeOutcome), []);
    const answers = load.outcomes.flatMap((o) => (o.answer ? [o.answer] : []));
    assert.equal(answers.filter((a) => a.suspended).length, 0, 'no request ran while suspended');
    const heldThenServed = load.outcomes.filter(
      (o) => o.phase < 2 && o.answer !== undefined && fresh.includes(o.answer.id),
    );
    assert.ok(
      heldThenServed.length > 0,
      'requests started before resume were held, then served by the new workers',
    );
    t.diagnostic(`${load.ok()} requests, ${heldThenServed.length} held through the window, 0 failed`);
  });
});

describe('listen: a worker SIGKILLed under load at the port', () => {
  let app: AppDir;
  let daemon: Daemon;
  let port: number;
  before(async () => {
    ({ app, daemon, port } = await startFront(2));
  });
  after(() => teardown(daemon, app));

  test('only connections already on the killed worker may fail; every later connection succeeds', async (t) => {
    const workers = (await daemon.status()).workers.filter((w) => w.role === 'serving');
    const victim = workers[0]!;
    const load = new FrontLoad(port, { keepAlive: 4, fresh: 3 });
    try {
      await load.flowing('requests before the kill', 100);
      process.kill(victim.pid!, 'SIGKILL');
      // From here on no request may reach the victim: it can no longer confirm a handoff.
      load.phase = 1;
      await waitFor('a replacement in the slot', async () => {
        const ids = await servingIds(daemon);
        return ids.length === 2 && !ids.includes(victim.id);
      });
      load.phase = 2;
      await load.flowing('requests after the replacement', 100);
    } finally {
      await load.stop();
    }
    const failures = load.failures();
    // Allowed: a request on a connection the victim held (in flight when it died, or sent on
    // it before the client saw it close), and a request started before the kill on a new
    // connection (it may have been handed to the victim already). Nothing else.
    const unexpected = failures.filter((o) => o.on !== victim.id && !(o.on === null && o.phase === 0));
    assert.deepEqual(unexpected.map(describeOutcome), [], 'failures not explained by the killed worker');
    // Connections cut by the kill, never an HTTP error answer.
    assert.deepEqual(failures.filter((o) => o.error?.startsWith('HTTP ')).map(describeOutcome), []);
    const later = load.outcomes.filter((o) => o.phase > 0 && o.on !== victim.id);
    assert.ok(later.length > 100 && later.every((o) => o.answer), 'connections after the kill all succeed');
    t.diagnostic(
      `${load.ok()} requests, ${failures.length} failed on the killed worker's connections, ${later.length} after the kill all answered`,
    );
  });
});

describe('listen: set-workers up and down under load at the port', () => {
  let app: AppDir;
  let daemon: Daemon;
  let port: number;
  before(async () => {
    ({ app, daemon, port } = await startFront(2));
  });
  after(() => teardown(daemon, app));

  test('3, 1, then 2 workers: 0 failed, and new connections reach exactly the serving workers', async (t) => {
    const load = new FrontLoad(port);
    try {
      await load.flowing('requests before scaling');
      for (const [phase, count] of [
        [1, 3],
        [2, 1],
        [3, 2],
      ] as const) {
        const r = await daemon.cli(['set-workers', String(count)], { timeoutMs: 60_000 });
        assert.equal(r.code, 0, r.stderr);
        const ids = await servingIds(daemon);
        assert.equal(ids.length, count);
        load.phase = phase;
        await load.flowing(`requests at ${count} workers`, 60);
        // New connections go to the serving workers only, and reach each of them (the load's
        // connections share the round robin, so this may take more than `count` of them).
        const seen = new Set<string>();
        for (let i = 0; i < count * 50 && seen.size < count; i++) {
          const res = await httpRequest({ port });
          assert.equal(res.status, 200);
          const { id } = JSON.parse(res.body) as Answer;
          assert.ok(ids.includes(id), `a new connection at ${count} workers went to ${id}, not serving`);
          seen.add(id);
        }
        assert.deepEqual([...seen].sort(), [...ids].sort(), `new connections at ${count} workers`);
      }
    } finally {
      await load.stop();
    }
    assert.deepEqual(load.failures().map(describeOutcome), []);
    t.diagnostic(`${load.ok()} requests across 3 scalings, 0 failed`);
  });
});

// serve() (front-serve.js), and the original contract (front.js: its own server.close() and
// process.exit(0), made safe by the preload).
for (const fixture of ['front-serve.js', 'front.js'])
  describe(`listen: a restart while kept-alive connections sit idle (${fixture})`, () => {
    let app: AppDir;
    let daemon: Daemon;
    let port: number;
    before(async () => {
      // The old way: no handover, and idle connections left to the client as long as the test needs.
      ({ app, daemon, port } = await startFront(2, fixture, { handover: false, stopIdleTimeout: 60_000 }));
    });
    after(() => teardown(daemon, app));

    test('handover: false: the old workers keep idle connections open; the next request on each gets Connection: close', async () => {
      interface Idle {
        agent: http.Agent;
        socket: net.Socket | null;
        closed: boolean;
        id: string;
      }
      const get = (idle: Idle) =>
        httpRequest({ port }, { agent: idle.agent, method: 'POST', body: 'x'.repeat(100) });
      const idle: Idle[] = [];
      try {
        for (let i = 0; i < 6; i++) {
          const entry: Idle = {
            agent: new http.Agent({ keepAlive: true, maxSockets: 1 }),
            socket: null,
            closed: false,
            id: '',
          };
          entry.agent.on('free', (socket: net.Socket) => {
            if (entry.socket === socket) return;
            entry.socket = socket;
            socket.once('close', () => (entry.closed = true));
          });
          const res = await get(entry);
          assert.equal(res.status, 200);
          assert.notEqual(res.headers.connection, 'close');
          entry.id = (JSON.parse(res.body) as Answer).id;
          idle.push(entry);
        }
        const old = await servingIds(daemon);
        assert.deepEqual([...new Set(idle.map((e) => e.id))].sort(), [...old].sort());

        const r = await daemon.cli(['restart'], { timeoutMs: 60_000 });
        assert.equal(r.code, 0, r.stderr);
        await waitFor('the old workers draining', async () => {
          const s = await daemon.status();
          return old.every((id) => s.workers.find((w) => w.id === id)?.state === 'draining');
        });
        // New connections go to the new workers meanwhile.
        const fresh = await servingIds(daemon);
        for (let i = 0; i < 4; i++) {
          const res = await httpRequest({ port });
          assert.ok(fresh.includes((JSON.parse(res.body) as Answer).id));
        }
        // A draining worker does not close an idle connection a client may be sending on.
        assert.deepEqual(
          idle.map((e) => e.closed),
          idle.map(() => false),
          'idle connections still open',
        );
        const s = await daemon.status();
        assert.ok(
          old.every((id) => s.workers.some((w) => w.id === id)),
          'the old workers wait for them',
        );

        for (const entry of idle) {
          const res = await get(entry);
          assert.equal(res.status, 200);
          assert.equal((JSON.parse(res.body) as Answer).id, entry.id, 'answered on the same connection');
          assert.equal(res.headers.connection, 'close');
        }
        await waitFor('the idle connections closed', () => idle.every((e) => e.closed));
        await waitFor('the old workers gone', async () => {
          const ids = (await daemon.status()).workers.map((w) => w.id);
          return old.every((id) => !ids.includes(id));
        });
      } finally {
        for (const entry of idle) entry.agent.destroy();
      }
    });
  });

for (const fixture of ['front-serve.js', 'front.js'])
  describe(`listen: a restart moves kept-alive connections to the new workers (${fixture})`, () => {
    let app: AppDir;
    let daemon: Daemon;
    let port: number;
    before(async () => {
      ({ app, daemon, port } = await startFront(2, fixture));
    });
    after(() => teardown(daemon, app));

    test('each idle connection is answered by a new worker on the same connection, and the old workers exit', async () => {
      const entries: { agent: http.Agent; socket: net.Socket | null; closed: boolean }[] = [];
      const post = (e: (typeof entries)[number]) =>
        httpRequest({ port }, { agent: e.agent, method: 'POST', body: 'x'.repeat(100) });
      try {
        for (let i = 0; i < 6; i++) {
          const entry = {
            agent: new http.Agent({ keepAlive: true, maxSockets: 1 }),
            socket: null as net.Socket | null,
            closed: false,
          };
          entry.agent.on('free', (socket: net.Socket) => {
            if (entry.socket === null) {
              entry.socket = socket;
              socket.once('close', () => (entry.closed = true));
            } else assert.equal(socket, entry.socket, 'one connection per client');
          });
          assert.equal((await post(entry)).status, 200);
          entries.push(entry);
        }
        const old = await servingIds(daemon);
        const r = await daemon.cli(['restart', '--json'], { timeoutMs: 60_000 });
        assert.equal(r.code, 0, r.stderr);
        assert.deepEqual((JSON.parse(r.stdout) as { connections: unknown }).connections, {
          moved: 6,
          busy: 0,
          drained: 0,
        });
        const fresh = await servingIds(daemon);
        for (const entry of entries) {
          const res = await post(entry);
          assert.equal(res.status, 200);
          assert.ok(fresh.includes((JSON.parse(res.body) as Answer).id), 'answered by a new worker');
          assert.notEqual(res.headers.connection, 'close');
        }
        assert.deepEqual(
          entries.map((e) => e.closed),
          entries.map(() => false),
          'no connection closed',
        );
        await waitFor('the old workers gone', async () => {
          const ids = (await daemon.status()).workers.map((w) => w.id);
          return old.every((id) => !ids.includes(id));
        });
      } finally {
        for (const entry of entries) entry.agent.destroy();
      }
    });
  });
