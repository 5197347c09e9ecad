/**
 * Config files written for the original nodesockd v2: the `options:` block, `debug`, a free-form
 * `name`, its discovery names, and its stdout/stderr rules.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { afterEach, describe, test } from 'node:test';
import { loadOptions } from '../src/cli/overrides';
import { findConfigFile, type LoadedConfig, loadConfig } from '../src/config/load';
import { fileName, titleName } from '../src/config/name';
import { DEFAULTS, DISCARD_OUTPUT } from '../src/config/schema';
import { type AppDir, makeApp, teardown } from './helpers/app';
import { problems, tmpDir, write } from './helpers/config';
import { cli, Daemon, FIXTURES } from './helpers/daemon';
import { getJson } from './helpers/http';
import { waitFor } from './helpers/wait';

const load = (dir: string, configPath?: string, overrides = {}): LoadedConfig =>
  loadConfig({ ...loadOptions(configPath, overrides), cwd: dir });

/** The original's example, `nodesockd.yml` next to `examples/`. */
const V2_EXAMPLE = `name: "nodesockd example"
script: examples/server.js
tmpDir: examples/tmp
workers: 2
standby: 1
debug: true
options:
  stdout: examples/app.log
`;

describe('the original v2 layout', () => {
  test('the v2 example nodesockd.yml loads as written', (t) => {
    const dir = tmpDir(t);
    const file = write(dir, 'nodesockd.yml', V2_EXAMPLE);
    const { config, files, origins } = load(dir);
    assert.deepEqual(files, [file]);
    assert.equal(config.name, 'nodesockd example', 'the raw name is kept');
    assert.equal(config.debug, true);
    assert.equal(config.workers, 2);
    assert.equal(config.standby, 1);
    assert.equal(config.script, path.join(dir, 'examples/server.js'));
    assert.equal(config.stdout, path.join(dir, 'examples/app.log'), 'options.stdout resolves like stdout');
    assert.equal(config.stderr, config.stdout, 'stderr goes to the stdout file when only stdout is given');
    assert.equal(config.symlinks, 'relative');
    assert.equal(origins.stdout, file);
    assert.ok(!('options' in config));
  });

  test('every options: key, and values as the flat keys give them', (t) => {
    const dir = tmpDir(t);
    write(
      dir,
      'nodesockd.yaml',
      `script: app.js
tmpDir: run
options:
  stdout: logs/out.log
  stderr: logs/err.log
  spawnTimeout: 2000
  onlineTimeout: 10000
  shutdownTimeout: 10000
  maxStartAttempts: 3
  symlinks: absolute
`,
    );
    write(
      dir,
      'flat.yaml',
      `script: app.js
tmpDir: run
stdout: logs/out.log
stderr: logs/err.log
spawnTimeout: 2000
onlineTimeout: 10000
shutdownTimeout: 10000
maxStartAttempts: 3
symlinks: absolute
`,
    );
    const nested = load(dir).config;
    assert.equal(nested.stderr, path.join(dir, 'logs/err.log'));
    assert.equal(nested.spawnTimeout, 2000);
    assert.equal(nested.onlineTimeout, 10000);
    assert.equal(nested.shutdownTimeout, 10000);
    assert.equal(nested.maxStartAttempts, 3);
    assert.equal(nested.symlinks, 'absolute');
    assert.deepEqual(nested, load(dir, 'flat.yaml').config);
  });

  test('a key given both at the top level and in options is an error naming both places', (t) => {
    const dir = tmpDir(t);
    const file = write(
      dir,
      'nodesockd.yaml',
      'script: app.js\ntmpDir: run\nshutdownTimeout: 5000\nstdout: a.log\noptions:\n  shutdownTimeout: 10000\n  stdout: b.log\n',
    );
    const list = problems(() => load(dir));
    assert.deepEqual(list.sort(), [
      `${file}: options.shutdownTimeout: shutdownTimeout is given twice, as "shutdownTimeout" at the top level and as "options.shutdownTimeout": keep one of them`,
      `${file}: options.stdout: stdout is given twice, as "stdout" at the top level and as "options.stdout": keep one of them`,
    ]);
  });

  test('across extends the nearer file wins, and options merge key by key', (t) => {
    const dir = tmpDir(t);
    const base = write(
      dir,
      'base.yml',
      'workers: 4\noptions:\n  spawnTimeout: 111\n  shutdownTimeout: 1234\n  stdout: base.log\n',
    );
    const entry = write(
      dir,
      'nodesockd.yml',
      'extends: ./base.yml\nscript: app.js\ntmpDir: run\nshutdownTimeout: 4321\noptions:\n  onlineTimeout: 222\n',
    );
    const { config, origins } = load(dir);
    assert.equal(config.spawnTimeout, 111);
    assert.equal(config.onlineTimeout, 222);
    assert.equal(config.shutdownTimeout, 4321);
    assert.equal(config.stdout, path.join(dir, 'base.log'));
    assert.equal(origins.spawnTimeout, base);
    assert.equal(origins.onlineTimeout, entry);
    assert.equal(origins.shutdownTimeout, entry);
  });

  test('bad and unknown keys inside options name options.<key>', (t) => {
    const dir = tmpDir(t);
    const file = write(
      dir,
      'nodesockd.yaml',
      'script: app.js\ntmpDir: run\noptions:\n  spawnTimeout: soon\n  symlinks: hard\n  killTimeout: 5\n  shutdownTimout: 5\n',
    );
    const list = problems(() => load(dir));
    assert.deepEqual(list.sort(), [
      `${file}: options.killTimeout: unknown key "killTimeout" in options (options holds only stdout, stderr, spawnTimeout, onlineTimeout, shutdownTimeout, maxStartAttempts, symlinks): write it at the top level`,
      `${file}: options.shutdownTimout: unknown key "shutdownTimout" in options (did you mean "options.shutdownTimeout"?)`,
      `${file}: options.spawnTimeout: spawnTimeout must be a number of milliseconds (got "soon")`,
      `${file}: options.symlinks: symlinks must be "relative" or "absolute" (got "hard")`,
    ]);
    const notAMap = write(dir, 'list.yaml', 'script: app.js\ntmpDir: run\noptions: [stdout]\n');
    assert.equal(problems(() => load(dir, 'list.yaml')).length, 1);
    assert.match(problems(() => load(dir, 'list.yaml'))[0]!, new RegExp(`^${notAMap}: options: `));
  });

  test('stderr: null discards stderr even when stdout is set; stdout: null discards stdout', (t) => {
    const dir = tmpDir(t);
    write(dir, 'a.yaml', 'script: app.js\ntmpDir: run\noptions:\n  stdout: app.log\n  stderr: null\n');
    write(dir, 'b.json', JSON.stringify({ script: 'app.js', tmpDir: 'run', stdout: null }));
    write(dir, 'c.yaml', 'script: app.js\ntmpDir: run\nstderr: err.log\n');
    const a = load(dir, 'a.yaml').config;
    assert.equal(a.stdout, path.join(dir, 'app.log'));
    assert.equal(a.stderr, DISCARD_OUTPUT);
    const b = load(dir, 'b.json').config;
    assert.equal(b.stdout, DISCARD_OUTPUT);
    assert.equal(b.stderr, DISCARD_OUTPUT, 'stderr follows the (discarded) stdout');
    const c = load(dir, 'c.yaml').config;
    assert.equal(c.stdout, undefined, "only stderr: stdout stays the daemon's");
    assert.equal(c.stderr, path.join(dir, 'err.log'));
  });

  test('debug: a boolean, false by default, also set by --debug', (t) => {
    const dir = tmpDir(t);
    write(dir, 'nodesockd.yaml', 'script: app.js\ntmpDir: run\n');
    const bad = write(dir, 'bad.yaml', 'script: app.js\ntmpDir: run\ndebug: yes please\n');
    assert.equal(load(dir).config.debug, false);
    assert.equal(DEFAULTS.debug, false);
    assert.equal(load(dir, undefined, { debug: true }).config.debug, true);
    assert.equal(load(dir, undefined, { debug: true }).origins.debug, 'command line');
    assert.deepEqual(
      problems(() => load(dir, 'bad.yaml')),
      [`${bad}: debug: debug must be true or false (got "yes please")`],
    );
  });

  test('name: any non-empty text; titleName and fileName give its safe forms', (t) => {
    const dir = tmpDir(t);
    write(dir, 'nodesockd.yaml', 'script: app.js\ntmpDir: run\nname: "Café: shop #2 / EU"\n');
    assert.equal(load(dir).config.name, 'Café: shop #2 / EU');
    const empty = write(dir, 'empty.yaml', 'script: app.js\ntmpDir: run\nname: ""\n');
    assert.deepEqual(
      problems(() => load(dir, 'empty.yaml')),
      [`${empty}: name: name must not be empty (got "")`],
    );

    assert.equal(titleName('nodesockd example'), 'nodesockd example');
    assert.equal(titleName('line one\nline\ttwo\u001b[31m  '), 'line one line two [31m');
    assert.equal(titleName('\n\t'), 'app');
    assert.equal(fileName('nodesockd example'), 'nodesockd-example');
    assert.equal(fileName('Café: shop #2 / EU'), 'Cafe-shop-2-EU');
    assert.equal(fileName('../../etc/passwd'), 'etc-passwd');
    assert.equal(fileName('-rf .hidden'), 'rf-.hidden');
    assert.equal(fileName('my_app.v2'), 'my_app.v2');
    assert.equal(fileName('日本'), 'app');
    assert.equal(fileName('x'.repeat(100)).length, 64);
  });
});

describe("the original's discovery names", () => {
  // The original looks for these, in this order. Ours finds every one of them; when several
  // exist, SPEC §3's order decides (local first, then .yaml before .yml, plain before dotted).
  const ORIGINAL_NAMES = [
    '.nodesockd.local.yml',
    '.nodesockd.local.yaml',
    'nodesockd.local.yml',
    'nodesockd.local.yaml',
    '.nodesockd.yml',
    '.nodesockd.yaml',
    'nodesockd.yml',
    'nodesockd.yaml',
  ];

  test('each of them alone is found and loaded', (t) => {
    for (const name of ORIGINAL_NAMES) {
      const dir = tmpDir(t);
      const file = write(dir, name, V2_EXAMPLE);
      assert.equal(findConfigFile(dir), file, name);
      assert.equal(load(dir).config.name, 'nodesockd example');
    }
  });

  test('a local file wins over a shared one, whichever of the original names each has', (t) => {
    const dir = tmpDir(t);
    write(dir, '.nodesockd.yml', `${V2_EXAMPLE.replace('nodesockd example', 'shared')}`);
    const local = write(dir, '.nodesockd.local.yml', `${V2_EXAMPLE.replace('nodesockd example', 'local')}`);
    assert.equal(findConfigFile(dir), local);
    assert.equal(load(dir).config.name, 'local');
  });
});

describe('a free-form name in generated files', () => {
  test('systemd names the unit with fileName and describes it on one line; nginx keeps one comment line', async (t) => {
    const dir = tmpDir(t);
    const file = write(
      dir,
      'nodesockd.yml',
      `${V2_EXAMPLE.replace('"nodesockd example"', '"nodesockd example\\nExecStart=/bin/evil"')}`,
    );
    const unit = await cli(['systemd', '-c', file]);
    assert.equal(unit.code, 0, unit.stderr);
    assert.match(
      unit.stdout,
      /^# Install: save as \/etc\/systemd\/system\/nodesockd-example-ExecStart-bin-evil\.service, then$/m,
    );
    assert.match(unit.stdout, /^Description=nodesockd: nodesockd example ExecStart=\/bin\/evil$/m);
    assert.equal(unit.stdout.match(/^ExecStart=/gm)?.length, 1, 'the name cannot add a line to the unit');
    const nginx = await cli(['nginx', '-c', file]);
    assert.equal(nginx.code, 0, nginx.stderr);
    assert.doesNotMatch(nginx.stdout, /^ExecStart/m);
  });
});

describe('a v2 config through the daemon', () => {
  let daemon: Daemon | undefined;
  let app: AppDir | undefined;
  afterEach(async () => {
    if (app) await teardown(daemon, app);
    daemon = undefined;
    app = undefined;
  });

  test('name with spaces, debug: true and options.stdout: serves, logs debug lines, writes the log file', async () => {
    const a = makeApp({
      name: 'nodesockd example',
      debug: true,
      workers: 2,
      options: { stdout: 'app.log', shutdownTimeout: 10_000 },
    });
    app = a;
    const d = await Daemon.start(['daemon', '-c', a.configFile], a.ipcFile, { online: 2 });
    daemon = d;
    const status = await d.status();
    assert.equal(status.name, 'nodesockd example');
    for (const slot of [0, 1]) await getJson({ socketPath: a.published(slot) });
    await d.waitOutput(/ debug /, 'debug lines, as debug: true asks');
    const log = path.join(a.dir, 'app.log');
    await waitFor("the workers' stdout in options.stdout", () =>
      /listening on /.test(fs.existsSync(log) ? fs.readFileSync(log, 'utf8') : ''),
    );
    const config = JSON.parse((await d.cli(['config', '--json'])).stdout) as {
      config: Record<string, unknown>;
    };
    assert.equal(config.config.stdout, log);
    assert.equal(config.config.stderr, log);
    assert.equal(config.config.shutdownTimeout, 10_000);
    assert.equal(config.config.script, path.join(FIXTURES, 'plain.js'));
  });
});
