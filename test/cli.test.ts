import assert from 'node:assert/strict';
import { fork } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { after, afterEach, describe, test } from 'node:test';
import { parse as parseYaml, stringify } from 'yaml';
import { type AppDir, makeApp, teardown } from './helpers/app';
import { type CliResult, cli, Daemon, FIXTURES, isAlive, makeTempDir } from './helpers/daemon';
import { getJson } from './helpers/http';
import { waitFor } from './helpers/wait';

// The CLI as users meet it: the built binary, its exit codes and what it prints (SPEC §2),
// and the control socket it talks to, which no input may break (SPEC §4.6).

const COMMANDS = ['daemon', 'start', 'stop', 'restart', 'resume', 'status', 'health', 'config', 'check'];
const STACK = /^\s+at /m;
/** A guard for commands that must fail: if a regression let one start a daemon, it ends anyway. */
const MUST_FAIL = { timeoutMs: 20_000 };

const tempDirs: string[] = [];
const tempDir = () => {
  const dir = makeTempDir('nsd-cli-');
  tempDirs.push(dir);
  return dir;
};
after(() => {
  for (const dir of tempDirs) fs.rmSync(dir, { recursive: true, force: true });
});

let daemon: Daemon | undefined;
let app: AppDir | undefined;

afterEach(async () => {
  if (app) await teardown(daemon, app);
  daemon = undefined;
  app = undefined;
});

const stderrLines = (r: CliResult) => r.stderr.split('\n').filter((l) => l.trim() !== '');

/** Exit 1 and exactly one stderr line, `nodesockd: …` matching `re`, with no stack trace. */
function assertOneLineError(r: CliResult, re: RegExp): void {
  const shown = `exit ${r.code}\nstdout: ${r.stdout}\nstderr: ${r.stderr}`;
  assert.equal(r.code, 1, shown);
  const lines = stderrLines(r);
  assert.equal(lines.length, 1, `one line on stderr:\n${shown}`);
  assert.match(lines[0]!, /^nodesockd: /, shown);
  assert.match(lines[0]!, re, shown);
  assert.doesNotMatch(r.stderr, STACK, 'no stack trace');
  assert.equal(r.stdout, '', 'nothing on stdout');
}

const escapeRe = (s: string) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

/** A config file in its own directory, with an existing script and tmpDir, plus `extra`. */
function writeConfig(extra: Record<string, unknown> | string, name = 'nodesockd.yaml'): string {
  const dir = tempDir();
  fs.mkdirSync(path.join(dir, 'run'));
  const base = { script: path.join(FIXTURES, 'plain.js'), tmpDir: 'run' };
  const file = path.join(dir, name);
  fs.writeFileSync(
    file,
    typeof extra === 'string' ? `${stringify(base)}${extra}` : stringify({ ...base, ...extra }),
  );
  return file;
}

describe('--help', () => {
  for (const command of COMMANDS) {
    test(`${command} --help prints its usage and exits 0`, async () => {
      const r = await cli([command, '--help'], { cwd: tempDir() });
      assert.equal(r.code, 0, r.stderr);
      assert.match(r.stdout, new RegExp(`^Usage: nodesockd ${command} \\[options\\]`, 'm'));
      assert.match(r.stdout, /^Options:/m);
      assert.match(r.stdout, /-h, --help/);
      assert.equal(r.stderr, '');
    });
  }

  test('health --help gives its exit codes and --json', async () => {
    const r = await cli(['health', '--help'], { cwd: tempDir() });
    assert.equal(r.code, 0, r.stderr);
    assert.match(
      r.stdout.replace(/\s+/g, ' '),
      /exit 0 when every slot .* 1 with the reason, 2 when no daemon answers/,
    );
    assert.match(r.stdout, /--json/);
  });

  test('nodesockd --help lists every command', async () => {
    const r = await cli(['--help'], { cwd: tempDir() });
    assert.equal(r.code, 0, r.stderr);
    for (const command of COMMANDS) assert.match(r.stdout, new RegExp(`^\\s+${command}\\b`, 'm'));
  });
});

describe('no daemon running', () => {
  const missing = '/nonexistent/x.ipc';

  for (const [command, count, range] of [
    ['set-workers', '300', '1 to 256'],
    ['set-workers', '0', '1 to 256'],
    ['set-standby', '65', '0 to 64'],
  ] as const) {
    test(`${command} ${count}: refused by the CLI with its own bounds, before any daemon is asked`, async () => {
      const r = await cli([command, count, '--ipc-file', missing], MUST_FAIL);
      assert.match(
        r.stderr,
        new RegExp(`'${count}' is invalid for argument 'count'\\. must be a whole number from ${range}`),
      );
      assert.doesNotMatch(r.stderr, /data\.count|no daemon/);
    });
  }

  for (const command of ['status', 'restart', 'stop', 'resume']) {
    test(`${command} --ipc-file ${missing}: one line naming the path`, async () => {
      const r = await cli([command, '--ipc-file', missing], MUST_FAIL);
      assertOneLineError(r, new RegExp(`no daemon is running at ${escapeRe(missing)}\\b`));
    });

    test(`${command} -c <config whose tmpDir has no daemon>: one line naming the IPC file`, async () => {
      app = makeApp({ workers: 1 });
      const r = await cli([command, '-c', app.configFile], MUST_FAIL);
      assertOneLineError(r, new RegExp(`no daemon is running at ${escapeRe(app.ipcFile)}\\b`));
    });
  }

  test('a stale IPC file left by a killed daemon: one line, nothing started', async () => {
    app = makeApp({ workers: 1 });
    // A socket file nobody listens on any more, as after a SIGKILLed daemon.
    const holder = fork(path.join(FIXTURES, 'listen-forever.js'), [app.ipcFile], { stdio: 'ignore' });
    await waitFor('the socket file to exist', () => fs.existsSync(app!.ipcFile));
    holder.kill('SIGKILL');
    await new Promise((r) => holder.once('exit', r));
    for (const command of ['status', 'restart', 'stop', 'resume']) {
      const r = await cli([command, '-c', app.configFile], MUST_FAIL);
      assertOneLineError(r, new RegExp(`no daemon is running at ${escapeRe(app.ipcFile)}\\b`));
    }
    assert.deepEqual(fs.readdirSync(app.tmpDir), ['nodesockd.ipc'], 'no worker was started');
  });

  test('health exits 2, not 1 (unhealthy), with one line, through either path to the socket', async () => {
    app = makeApp({ workers: 1 });
    for (const args of [
      ['health', '--ipc-file', missing],
      ['health', '-c', app.configFile],
      ['health', '--json', '-c', app.configFile],
    ]) {
      const r = await cli(args, MUST_FAIL);
      assert.equal(r.code, 2, `${args.join(' ')}: ${r.stderr}`);
      assert.equal(stderrLines(r).length, 1, r.stderr);
      assert.match(r.stderr, /^nodesockd: no daemon is running at /);
      assert.equal(r.stdout, '');
    }
    const bad = await cli(['health', '-c', path.join(app.dir, 'missing.yaml')], MUST_FAIL);
    assert.equal(bad.code, 2, bad.stderr);
    assert.equal(stderrLines(bad).length, 1, bad.stderr);
  });

  test('the config found by discovery in the current directory', async () => {
    app = makeApp({ workers: 1 });
    const r = await cli(['status'], { cwd: app.dir, env: { ...process.env, PWD: app.dir } });
    assertOneLineError(r, new RegExp(`no daemon is running at ${escapeRe(app.ipcFile)}\\b`));
  });
});

describe('no config file and no flags', () => {
  for (const args of [[], ['daemon'], ['status'], ['check']]) {
    test(`nodesockd ${args.join(' ')}: one clear line`, async () => {
      const dir = tempDir();
      const r = await cli(args, { cwd: dir, env: { ...process.env, PWD: dir }, ...MUST_FAIL });
      assertOneLineError(r, new RegExp(`no config file found in ${escapeRe(dir)} .*--config`));
      assert.deepEqual(fs.readdirSync(dir), [], 'nothing created');
    });
  }
});

describe('invalid configs through the binary', () => {
  test('an unknown key', async () => {
    const file = writeConfig({ workerz: 2 });
    const r = await cli(['daemon', '-c', file], MUST_FAIL);
    assertOneLineError(r, new RegExp(`^nodesockd: ${escapeRe(file)}: workerz: .*unknown key`));
  });

  test('workers: 0', async () => {
    const file = writeConfig({ workers: 0 });
    const r = await cli(['daemon', '-c', file], MUST_FAIL);
    assertOneLineError(r, new RegExp(`^nodesockd: ${escapeRe(file)}: workers: .*at least 1`));
  });

  test('a socketFile without {worker}', async () => {
    const file = writeConfig({ socketFile: 'app.sock' });
    const r = await cli(['daemon', '-c', file], MUST_FAIL);
    assertOneLineError(r, new RegExp(`^nodesockd: ${escapeRe(file)}: socketFile: .*\\{worker\\}`));
  });

  test('a YAML syntax error names the file and the line', async () => {
    const file = writeConfig('workers: [1\nname: x\n');
    const r = await cli(['daemon', '-c', file], MUST_FAIL);
    assertOneLineError(r, new RegExp(`^nodesockd: ${escapeRe(file)}: .*YAML.*line \\d+`));
  });

  test('a JSON syntax error names the file', async () => {
    const file = writeConfig('', 'nodesockd.json');
    fs.writeFileSync(file, '{"script": "app.js",');
    const r = await cli(['daemon', '-c', file], MUST_FAIL);
    assertOneLineError(r, new RegExp(`^nodesockd: ${escapeRe(file)}: .*JSON`));
  });

  test('several problems at once: each on its own line naming the file and the key', async () => {
    const file = writeConfig({ workers: 0, socketFile: 'app.sock', workerz: 2 });
    const r = await cli(['daemon', '-c', file], MUST_FAIL);
    assert.equal(r.code, 1, r.stderr);
    assert.doesNotMatch(r.stderr, STACK);
    const lines = stderrLines(r);
    assert.match(lines[0]!, /^nodesockd: 3 config problems:$/, r.stderr);
    assert.equal(lines.length, 4, r.stderr);
    for (const key of ['workers', 'socketFile', 'workerz']) {
      const hits = lines.filter((l) => l.trim().startsWith(`${file}: ${key}: `));
      assert.equal(hits.length, 1, `one line for ${key}:\n${r.stderr}`);
    }
  });

  test('-w abc on the command line names --workers', async () => {
    const file = writeConfig({});
    const r = await cli(['daemon', '-c', file, '-w', 'abc'], MUST_FAIL);
    assertOneLineError(r, /--workers\b.*abc/);
    assert.doesNotMatch(r.stderr, new RegExp(escapeRe(file)), 'the file is not to blame');
  });

  test('--debug prints the stack trace', async () => {
    const file = writeConfig({ workers: 0 });
    const bad = await cli(['daemon', '-c', file, '--debug'], MUST_FAIL);
    assert.equal(bad.code, 1);
    assert.match(bad.stderr, /^nodesockd: .*workers: /);
    assert.match(bad.stderr, STACK);
    const noDaemon = await cli(['status', '--ipc-file', '/nonexistent/x.ipc', '--debug']);
    assert.equal(noDaemon.code, 1);
    assert.match(noDaemon.stderr, /^nodesockd: no daemon is running at \/nonexistent\/x\.ipc/);
    assert.match(noDaemon.stderr, STACK);
  });
});

describe('usage errors', () => {
  test('an unknown option', async () => {
    for (const args of [['status', '--bogus'], ['--bogus']]) {
      const r = await cli(args, { cwd: tempDir(), ...MUST_FAIL });
      assert.notEqual(r.code, 0);
      assert.match(r.stderr, /unknown option '--bogus'/);
      assert.match(r.stderr, /--help/);
      assert.doesNotMatch(r.stderr, STACK);
    }
  });

  test('an unknown command is called one, with the list of commands', async () => {
    const r = await cli(['statsu'], { cwd: tempDir(), ...MUST_FAIL });
    assert.notEqual(r.code, 0);
    assert.match(r.stderr, /unknown command 'statsu'/);
    assert.match(r.stderr, /\bstatus\b/);
    assert.doesNotMatch(r.stderr, /daemon'?\. Expected/, 'not reported as an argument of daemon');
    assert.doesNotMatch(r.stderr, STACK);
  });

  test('global options may come before the command, as in the original v2', async () => {
    const file = writeConfig({});
    // The config is read for the control socket, where no daemon runs: the status command ran.
    const r = await cli(['-c', file, 'status'], MUST_FAIL);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /^nodesockd: no daemon is running at /);
    const i = await cli(['--ipc', '/nonexistent/x.ipc', '--debug', 'status'], MUST_FAIL);
    assert.match(i.stderr, /^nodesockd: no daemon is running at \/nonexistent\/x\.ipc/);
    // Other options before a command still say the command comes first.
    const other = await cli(['-w', '2', 'status'], MUST_FAIL);
    assert.match(other.stderr, /command must come first: nodesockd status/);
  });

  test('the original short options: -d on daemon, -s on start and restart, --ipc on client commands', async () => {
    const daemon = await cli(['daemon', '--help']);
    assert.match(daemon.stdout, /-d, --dev-server \[port\]/);
    for (const command of ['start', 'restart']) {
      const help = await cli([command, '--help']);
      assert.match(help.stdout, /-s, --suspended/);
      assert.match(help.stdout, /--ipc <path>/);
    }
  });

  test('--ipc and --ipc-file that disagree are one clear error', async () => {
    const r = await cli(['status', '--ipc', '/a.ipc', '--ipc-file', '/b.ipc'], MUST_FAIL);
    assert.equal(r.code, 1);
    assert.match(
      r.stderr,
      /^nodesockd: --ipc \/a\.ipc and --ipc-file \/b\.ipc disagree: give one of them\n$/,
    );
  });

  test('a bad option value', async () => {
    const r = await cli(['restart', '--max-attempts', '0', '--ipc-file', '/nonexistent/x.ipc']);
    assert.notEqual(r.code, 0);
    assert.match(r.stderr, /--max-attempts/);
    assert.doesNotMatch(r.stderr, STACK);
  });
});

describe('check', () => {
  const check = (file: string, ...args: string[]) => cli(['check', '-c', file, ...args]);

  test('a good setup (tmpDir 2750) passes', async () => {
    app = makeApp({ workers: 1 });
    fs.chmodSync(app.tmpDir, 0o2750);
    // nginx as this user: the host's own nginx (if any) is not the one this test is about.
    const self = ['--nginx-user', String(process.getuid?.())];
    const r = await check(app.configFile, ...self);
    assert.equal(r.code, 0, r.stdout + r.stderr);
    assert.doesNotMatch(r.stdout, /^(warning|error):/m, r.stdout);
    assert.match(r.stdout, new RegExp(escapeRe(app.configFile)));
    const json = JSON.parse((await check(app.configFile, '--json', ...self)).stdout);
    assert.deepEqual(json, { files: [app.configFile], findings: [] });
  });

  test('a world-writable tmpDir is an error', async () => {
    app = makeApp({ workers: 1 });
    fs.chmodSync(app.tmpDir, 0o777);
    const r = await check(app.configFile);
    assert.equal(r.code, 1);
    assert.match(r.stdout, new RegExp(`^error: .*${escapeRe(app.tmpDir)}.*writable by .*everyone`, 'm'));
    const json = JSON.parse((await check(app.configFile, '--json')).stdout) as {
      findings: { level: string; message: string }[];
    };
    assert.ok(
      json.findings.some((f) => f.level === 'error' && /mode 0777/.test(f.message)),
      JSON.stringify(json),
    );
  });

  test('a missing script is an error', async () => {
    app = makeApp({ workers: 1, script: 'missing.js' });
    fs.chmodSync(app.tmpDir, 0o2750);
    const r = await check(app.configFile);
    assert.equal(r.code, 1);
    const missing = path.join(app.dir, 'missing.js');
    assert.match(r.stdout, new RegExp(`^error: .*${escapeRe(missing)}.*does not exist`, 'm'));
    assert.doesNotMatch(r.stdout + r.stderr, STACK);
    const json = await check(app.configFile, '--json');
    assert.equal(json.code, 1);
    const parsed = JSON.parse(json.stdout) as { findings: { level: string; message: string }[] };
    assert.ok(parsed.findings.some((f) => f.level === 'error' && f.message.includes(missing)));
  });

  test('an invalid config fails like everywhere else', async () => {
    const file = writeConfig({ workers: 0 });
    const r = await check(file);
    assertOneLineError(r, new RegExp(`${escapeRe(file)}: workers: `));
  });
});

describe('config', () => {
  test('--local prints the resolved config as YAML and where it came from', async () => {
    app = makeApp({ workers: 3 });
    const r = await cli(['config', '--local', '-c', app.configFile]);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, new RegExp(`^tmpDir: ${escapeRe(app.tmpDir)}$`, 'm'));
    assert.match(r.stdout, new RegExp(`^# from: ${escapeRe(app.configFile)}$`, 'm'));
    const yaml = parseYaml(r.stdout) as Record<string, unknown>;
    assert.equal(yaml.tmpDir, app.tmpDir);
    assert.equal(yaml.ipcFile, app.ipcFile);
    assert.equal(yaml.workers, 3);
    const json = await cli(['config', '--local', '-c', app.configFile, '--json']);
    assert.equal(json.code, 0, json.stderr);
    const parsed = JSON.parse(json.stdout) as { config: Record<string, unknown>; files: string[] };
    assert.equal(parsed.config.tmpDir, app.tmpDir);
    assert.deepEqual(parsed.files, [app.configFile]);
  });

  test("against a running daemon it prints the daemon's config, command-line overrides included", async () => {
    app = makeApp({ workers: 1 });
    daemon = await Daemon.start(['daemon', '-c', app.configFile, '-w', '2'], app.ipcFile, { online: 2 });
    const r = await cli(['config', '-c', app.configFile]);
    assert.equal(r.code, 0, r.stderr);
    const yaml = parseYaml(r.stdout) as Record<string, unknown>;
    assert.equal(yaml.workers, 2, 'the daemon runs with -w 2');
    assert.equal(yaml.tmpDir, app.tmpDir);
    assert.match(r.stdout, new RegExp(`^# from: ${escapeRe(app.configFile)}$`, 'm'));
    const json = await daemon.cli(['config', '--json']);
    assert.equal(json.code, 0, json.stderr);
    const parsed = JSON.parse(json.stdout) as { config: Record<string, unknown>; files: string[] };
    assert.equal(parsed.config.workers, 2);
    assert.deepEqual(parsed.files, [app.configFile]);
    // The file itself still says 1.
    const local = parseYaml((await cli(['config', '--local', '-c', app.configFile])).stdout);
    assert.equal((local as Record<string, unknown>).workers, 1);
  });
});

interface Exchange {
  /** Reply lines, each parsed (or the raw text when it is not JSON). */
  replies: unknown[];
  /** Whether the daemon closed the connection. */
  closedByDaemon: boolean;
}

/**
 * Writes `payload` on a fresh control connection and collects replies until `replies` have
 * arrived (then hangs up; with `untilClose`, until the daemon closes the connection).
 */
function exchange(ipcFile: string, payload: string, replies = 1, untilClose = false): Promise<Exchange> {
  return new Promise((resolve) => {
    const socket = net.connect(ipcFile);
    const got: unknown[] = [];
    let pending = '';
    let settled = false;
    const finish = (closedByDaemon: boolean) => {
      if (settled) return;
      settled = true;
      socket.destroy();
      resolve({ replies: got, closedByDaemon });
    };
    socket.on('connect', () => socket.write(payload));
    socket.setEncoding('utf8');
    socket.on('data', (chunk: string) => {
      pending += chunk;
      for (let nl = pending.indexOf('\n'); nl >= 0; nl = pending.indexOf('\n')) {
        const line = pending.slice(0, nl);
        pending = pending.slice(nl + 1);
        try {
          got.push(JSON.parse(line));
        } catch {
          got.push(line);
        }
      }
      if (got.length >= replies && !untilClose) finish(false);
    });
    // EPIPE/ECONNRESET when the daemon cuts off an overlong frame: what counts is the reply.
    socket.on('error', () => undefined);
    socket.on('end', () => finish(true));
    socket.on('close', () => finish(true));
  });
}

/** A one-line error reply with the given id whose message matches `re`. */
function assertErrorReply(x: Exchange, id: number | null, re: RegExp): void {
  assert.equal(x.replies.length, 1, JSON.stringify(x));
  const reply = x.replies[0] as { id: unknown; ok: unknown; error: unknown };
  assert.equal(typeof reply, 'object', `a JSON reply: ${JSON.stringify(x)}`);
  assert.deepEqual(Object.keys(reply).sort(), ['error', 'id', 'ok']);
  assert.equal(reply.id, id);
  assert.equal(reply.ok, false);
  assert.equal(typeof reply.error, 'string');
  assert.ok(!(reply.error as string).includes('\n'), 'one line');
  assert.match(reply.error as string, re);
}

describe('the control socket survives bad input (SPEC §4.6)', () => {
  test('bad frames get error replies; the daemon and its workers carry on', async () => {
    const a = makeApp({ workers: 2 });
    app = a;
    const d = await Daemon.start(['daemon', '-c', a.configFile], a.ipcFile, { online: 2 });
    daemon = d;
    const ipc = a.ipcFile;
    const pids = await d.slotPids();

    assertErrorReply(await exchange(ipc, 'this is not json\n'), null, /invalid JSON/);
    assertErrorReply(await exchange(ipc, '{"id":1,"type":"bogus"}\n'), 1, /unknown request type "bogus"/);
    for (const value of ['42', '[1,2]', 'null', '"status"', 'true']) {
      assertErrorReply(await exchange(ipc, `${value}\n`), null, /invalid request: .*object/);
    }
    assertErrorReply(await exchange(ipc, '{"id":"7","type":"status"}\n'), null, /invalid request: id: /);
    assertErrorReply(await exchange(ipc, '{"type":"status"}\n'), null, /invalid request: id: /);
    assertErrorReply(await exchange(ipc, '{"id":2,"type":7}\n'), 2, /invalid request|unknown request type/);
    assertErrorReply(
      await exchange(ipc, '{"id":3,"type":"restart","data":{"suspended":"yes","maxAttempts":-1}}\n'),
      3,
      /invalid request: data\.(suspended|maxAttempts): /,
    );
    assertErrorReply(
      await exchange(ipc, '{"id":4,"type":"status","extra":true}\n'),
      4,
      /invalid request: .*extra/,
    );
    // Two frames in one write, one of them bad: each gets its own reply, in order.
    const two = await exchange(ipc, 'nope\n{"id":5,"type":"status"}\n', 2);
    assert.equal(two.replies.length, 2, JSON.stringify(two));
    assert.equal((two.replies[0] as { ok: boolean }).ok, false);
    assert.deepEqual(
      { id: (two.replies[1] as { id: number }).id, ok: (two.replies[1] as { ok: boolean }).ok },
      { id: 5, ok: true },
    );
    // An overlong line without a newline: cut off with a reply, not buffered forever.
    const big = await exchange(ipc, 'x'.repeat(2 * 1024 * 1024), 1, true);
    assertErrorReply(big, null, /frame larger than \d+ bytes/);
    assert.equal(big.closedByDaemon, true, 'the daemon hangs up after the reply');
    // Half a frame, then gone: no reply is due and nothing happens.
    await new Promise<void>((resolve) => {
      const s = net.connect(ipc, () => s.write('{"id":1,"type":"rest', () => s.destroy()));
      s.on('close', () => resolve());
      s.on('error', () => undefined);
    });

    // Everything still as before: the daemon answers, the same workers serve.
    assert.equal(d.child.exitCode, null, 'the daemon is alive');
    assert.ok(isAlive(d.child.pid!));
    assert.deepEqual(await d.slotPids(), pids);
    for (const [slot, pid] of pids.entries()) {
      const body = await getJson<{ pid: number }>({ socketPath: a.published(slot) });
      assert.equal(body.pid, pid);
    }
    const status = await d.cli(['status']);
    assert.equal(status.code, 0, status.stderr);
    assert.doesNotMatch(d.output, /internal error/);
  });

  test('a client that sends restart and hangs up at once: the restart still completes, the daemon lives', async () => {
    const a = makeApp({ workers: 2 });
    app = a;
    const d = await Daemon.start(['daemon', '-c', a.configFile], a.ipcFile, { online: 2 });
    daemon = d;
    const before = await d.slotPids();
    await new Promise<void>((resolve) => {
      const s = net.connect(a.ipcFile, () => s.write('{"id":1,"type":"restart"}\n', () => s.destroy()));
      s.on('close', () => resolve());
      s.on('error', () => undefined);
    });
    // The request was valid: the new generation goes live although nobody waits for the reply.
    const after = await waitFor('the new generation in both slots', async () => {
      const now = await d.slotPids();
      return now.length === 2 && now.every((pid) => !before.includes(pid)) ? now : undefined;
    });
    await waitFor('the old workers to exit', () => before.every((pid) => !isAlive(pid)));
    for (const [slot, pid] of after.entries()) {
      const body = await getJson<{ pid: number }>({ socketPath: a.published(slot) });
      assert.equal(body.pid, pid);
    }
    assert.equal(d.child.exitCode, null, 'the daemon is alive');
    const status = await d.status();
    assert.equal(status.running, true);
    assert.ok(status.workers.every((w) => w.state === 'online'));
    assert.doesNotMatch(d.output, /internal error/);
  });
});

describe('what a command loads (a quick CLI, a lean daemon)', () => {
  /** The packages in node_modules a process loaded, from NODE_DEBUG=module lines. */
  const packages = (debugOutput: string) =>
    new Set(
      [...debugOutput.matchAll(/load "[^"]*\/node_modules\/((?:@[^/"]+\/)?[^/"]+)\//g)].map((m) => m[1]!),
    );
  /** An environment whose os.tmpdir() (the CLI's cache) is a fresh directory. */
  const withTmp = (extra: NodeJS.ProcessEnv = {}) => {
    const tmp = tempDir();
    return { tmp, env: { ...process.env, TMPDIR: tmp, NODE_DEBUG: 'module', ...extra } };
  };
  /** writeConfig's settings as a JSON file. */
  const writeJson = (extra: Record<string, unknown>) => {
    const file = writeConfig(extra);
    const json = file.replace(/\.yaml$/, '.json');
    fs.writeFileSync(json, JSON.stringify(parseYaml(fs.readFileSync(file, 'utf8'))));
    fs.rmSync(file);
    return json;
  };
  /** The command's own stderr: without the module loader's debug lines. */
  const ownLines = (r: CliResult) => stderrLines(r).filter((l) => !/^MODULE \d+:/.test(l));

  test('status with a JSON config: no package; a YAML config: yaml only the first time', async () => {
    const { env } = withTmp();
    const json = writeJson({});
    const ipc = path.join(path.dirname(json), 'run', 'nodesockd.ipc');
    const noDaemon = new RegExp(`^nodesockd: no daemon is running at ${escapeRe(ipc)}\\b`);
    const r = await cli(['status', '-c', json], { env, ...MUST_FAIL });
    assert.equal(r.code, 1);
    // A plain status parses its options without commander (src/cli/quick-status.ts).
    assert.deepEqual([...packages(r.stderr)], []);
    assert.match(ownLines(r).join('\n'), noDaemon);

    const yaml = writeConfig({});
    const yamlIpc = path.join(path.dirname(yaml), 'run', 'nodesockd.ipc');
    const first = await cli(['status'], {
      cwd: path.dirname(yaml),
      env: { ...env, PWD: path.dirname(yaml) },
    });
    assert.deepEqual([...packages(first.stderr)], ['yaml']);
    const again = await cli(['status'], {
      cwd: path.dirname(yaml),
      env: { ...env, PWD: path.dirname(yaml) },
    });
    assert.deepEqual([...packages(again.stderr)], []);
    for (const x of [first, again]) {
      assert.deepEqual(ownLines(x), [`nodesockd: no daemon is running at ${yamlIpc} (ENOENT)`]);
    }
    // A config error still needs the full load, and is still one line.
    const bad = writeConfig({ tmpDir: 5 });
    const broken = await cli(['status', '-c', bad], { env, ...MUST_FAIL });
    // The full CLI (zod is bundled into it: src/zod.ts, so it is no package load of its own).
    assert.ok(packages(broken.stderr).has('commander'));
    assert.deepEqual(ownLines(broken), [`nodesockd: ${bad}: tmpDir: tmpDir must be a string (got 5)`]);
  });

  test('health, which a probe runs every few seconds, loads no package either', async () => {
    const { env } = withTmp();
    const json = writeJson({});
    for (const args of [
      ['health', '-c', json],
      ['-c', json, 'health', '--json'],
    ]) {
      const r = await cli(args, { env, ...MUST_FAIL });
      assert.equal(r.code, 2, args.join(' '));
      assert.deepEqual([...packages(r.stderr)], [], args.join(' '));
    }
  });

  test('status without commander only for its plain forms; every other form gets the full CLI and its words', async () => {
    const { env } = withTmp();
    const ipc = path.join(tempDir(), 'nodesockd.ipc');
    const noDaemon = `nodesockd: no daemon is running at ${ipc} (ENOENT)`;
    // The v2 order (global options first) and --json: still the quick path.
    for (const args of [
      ['-i', ipc, 'status', '--json'],
      ['status', `--ipc=${ipc}`],
    ]) {
      const r = await cli(args, { env, ...MUST_FAIL });
      assert.equal(r.code, 1);
      assert.deepEqual([...packages(r.stderr)], [], args.join(' '));
      assert.deepEqual(ownLines(r), [noDaemon]);
    }
    const typo = await cli(['status', '--jsn', '-i', ipc], { env, ...MUST_FAIL });
    assert.equal(typo.code, 1);
    assert.ok(packages(typo.stderr).has('commander'));
    assert.match(ownLines(typo).join('\n'), /^error: unknown option '--jsn'/);
    const disagree = await cli(['status', '--ipc', ipc, '--ipc-file', `${ipc}.other`], { env, ...MUST_FAIL });
    assert.deepEqual(ownLines(disagree), [
      `nodesockd: --ipc ${ipc} and --ipc-file ${ipc}.other disagree: give one of them`,
    ]);
    const help = await cli(['status', '--help'], { env });
    assert.equal(help.code, 0);
    assert.match(help.stdout, /show the daemon and its workers/);
    assert.match(help.stdout, /--watch/);
  });

  test('an unusable cache directory changes nothing', async () => {
    const { tmp, env } = withTmp();
    fs.writeFileSync(path.join(tmp, `nodesockd-${process.getuid!()}`), 'not a directory');
    const yaml = writeConfig({});
    const ipc = path.join(path.dirname(yaml), 'run', 'nodesockd.ipc');
    for (let i = 0; i < 2; i++) {
      const r = await cli(['status', '-c', yaml], { env, ...MUST_FAIL });
      assert.deepEqual(ownLines(r), [`nodesockd: no daemon is running at ${ipc} (ENOENT)`]);
      assert.ok(packages(r.stderr).has('yaml'), 'no memo: the YAML is parsed every time');
    }
  });

  test('a daemon without metrics loads neither prom-client nor semver, and no yaml for a JSON config', async () => {
    const { env } = withTmp();
    const json = writeJson({ workers: 2 });
    const ipc = path.join(path.dirname(json), 'run', 'nodesockd.ipc');
    app = {
      dir: path.dirname(json),
      tmpDir: path.dirname(ipc),
      ipcFile: ipc,
      configFile: json,
      published: () => '',
    };
    daemon = await Daemon.start(['daemon', '-c', json], ipc, { env, online: 2 });
    assert.equal((await daemon.cli(['status'])).code, 0);
    // zod is bundled into dist/cli/main.js (src/zod.ts): no package file of it is loaded.
    assert.deepEqual([...packages(daemon.output)].sort(), ['commander']);
    await teardown(daemon, app);
    daemon = undefined;

    const withMetrics = writeJson({ metrics: 'metrics.sock' });
    const ipc2 = path.join(path.dirname(withMetrics), 'run', 'nodesockd.ipc');
    app = {
      dir: path.dirname(withMetrics),
      tmpDir: path.dirname(ipc2),
      ipcFile: ipc2,
      configFile: withMetrics,
      published: () => '',
    };
    daemon = await Daemon.start(['daemon', '-c', withMetrics], ipc2, { env });
    assert.ok(packages(daemon.output).has('prom-client'), 'metrics: prom-client is loaded');
  });
});
