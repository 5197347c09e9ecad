import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import { resolveIpcPath } from '../src/cli/ipc-path';
import { type CliOverrides, loadOptions } from '../src/cli/overrides';
import {
  CONFIG_FILE_NAMES,
  ConfigError,
  deepMerge,
  findConfigFile,
  type LoadedConfig,
  type LoadOptions,
  loadConfig,
  logicalCwd,
} from '../src/config/load';
import { DEFAULT_ENV, DEFAULTS, DEV_SERVER_DEFAULT_PORT } from '../src/config/schema';
import { WORKER_ID_LENGTH } from '../src/worker-id';
import { problems, tmpDir, write } from './helpers/config';

/** Asserts exactly one problem line starts with `<source>: <key>: ` and matches `re`. */
function hasProblem(list: string[], source: string, key: string, re: RegExp): void {
  const prefix = `${source}: ${key}: `;
  const hits = list.filter((l) => l.startsWith(prefix) && re.test(l.slice(prefix.length)));
  assert.equal(hits.length, 1, `expected one "${prefix}" problem matching ${re} in:\n${list.join('\n')}`);
}

/** loadConfig as `nodesockd daemon` calls it, in `dir`, with these command-line overrides. */
const load = (
  dir: string,
  { overrides, ...extra }: Omit<LoadOptions, 'commandLine'> & { overrides?: CliOverrides } = {},
): LoadedConfig => loadConfig({ ...loadOptions(extra.configPath, overrides), cwd: dir, ...extra });

// ---------------------------------------------------------------------------------------
// Formats and discovery

test('YAML config: values, defaults, resolved paths, files and origins', (t) => {
  const dir = tmpDir(t);
  const file = write(dir, 'nodesockd.yaml', 'script: app.js\ntmpDir: run\nworkers: 3\nname: shop\n');
  const { config, files, baseDir, origins } = load(dir);
  assert.equal(config.script, path.join(dir, 'app.js'));
  assert.equal(config.tmpDir, path.join(dir, 'run'));
  assert.equal(config.workers, 3);
  assert.equal(config.name, 'shop');
  assert.equal(config.cwd, dir);
  assert.equal(config.socketFile, DEFAULTS.socketFile);
  assert.equal(config.ipcFile, path.join(dir, 'run', DEFAULTS.ipcFile));
  assert.equal(config.listenVar, 'LISTEN_ON');
  assert.equal(config.devServer, false);
  assert.equal(config.umask, 0o007);
  assert.deepEqual(config.env, DEFAULT_ENV);
  assert.equal(config.stdout, undefined);
  assert.deepEqual(files, [file]);
  assert.equal(baseDir, dir);
  assert.equal(origins.workers, file);
  assert.equal(origins.script, file);
  assert.equal(origins.listenVar, 'default');
  assert.equal(origins.cwd, 'default');
});

test('JSON config', (t) => {
  const dir = tmpDir(t);
  const file = write(dir, 'nodesockd.json', {
    script: 'srv/index.js',
    tmpDir: '/run/app',
    args: ['--port-from-env'],
    nodeArgs: ['--enable-source-maps'],
    socketFile: 'shop.{worker}.sock',
    spawnTimeout: 1000,
    umask: 18,
  });
  const { config, files } = load(dir);
  assert.deepEqual(files, [file]);
  assert.equal(config.script, path.join(dir, 'srv/index.js'));
  assert.equal(config.tmpDir, '/run/app');
  assert.deepEqual(config.args, ['--port-from-env']);
  assert.deepEqual(config.nodeArgs, ['--enable-source-maps']);
  assert.equal(config.socketFile, 'shop.{worker}.sock');
  assert.equal(config.spawnTimeout, 1000);
  assert.equal(config.umask, 18);
});

test('umask: YAML 0022 and "027" are octal', (t) => {
  const dir = tmpDir(t);
  write(dir, 'a.yaml', 'script: a.js\ntmpDir: run\numask: 0022\n');
  write(dir, 'b.yaml', 'script: a.js\ntmpDir: run\numask: "027"\n');
  write(dir, 'c.yml', 'script: a.js\ntmpDir: run\numask: 0o077\n');
  assert.equal(load(dir, { configPath: 'a.yaml' }).config.umask, 0o022);
  assert.equal(load(dir, { configPath: 'b.yaml' }).config.umask, 0o027);
  assert.equal(load(dir, { configPath: 'c.yml' }).config.umask, 0o077);
});

test('discovery order: local files first, then the plain names, dotted variants after each', (t) => {
  const dir = tmpDir(t);
  assert.equal(findConfigFile(dir), undefined);
  for (const name of CONFIG_FILE_NAMES) {
    const settings = { script: 'a.js', tmpDir: 'run', name: name.replace(/^\./, 'dot') };
    write(
      dir,
      name,
      name.endsWith('.json') ? settings : `script: a.js\ntmpDir: run\nname: ${settings.name}\n`,
    );
  }
  const expected = [
    'nodesockd.local.yaml',
    'nodesockd.local.yml',
    'nodesockd.local.json',
    '.nodesockd.local.yaml',
    '.nodesockd.local.yml',
    '.nodesockd.local.json',
    'nodesockd.yaml',
    'nodesockd.yml',
    'nodesockd.json',
    '.nodesockd.yaml',
    '.nodesockd.yml',
    '.nodesockd.json',
  ];
  for (const name of expected) {
    assert.equal(findConfigFile(dir), path.join(dir, name));
    const loaded = load(dir);
    assert.equal(loaded.config.name, name.replace(/^\./, 'dot'));
    assert.deepEqual(loaded.files, [path.join(dir, name)]);
    fs.rmSync(path.join(dir, name));
  }
  assert.equal(findConfigFile(dir), undefined);
});

test('a directory named like a config file is skipped; --config may name a directory', (t) => {
  const dir = tmpDir(t);
  fs.mkdirSync(path.join(dir, 'nodesockd.local.yaml'));
  const file = write(dir, 'nodesockd.yaml', 'script: a.js\ntmpDir: run\n');
  assert.equal(findConfigFile(dir), file);
  const other = tmpDir(t);
  assert.deepEqual(loadConfig({ cwd: other, configPath: dir }).files, [file]);
});

// ---------------------------------------------------------------------------------------
// extends

test('extends: relative base merged under, arrays replaced, origins and files', (t) => {
  const dir = tmpDir(t);
  const base = write(
    dir,
    'base/common.yaml',
    'tmpDir: run\nworkers: 4\nargs: [a, b]\nenv: [FOO]\nshutdownTimeout: 1234\nscript: base.js\n',
  );
  const entry = write(dir, 'app/nodesockd.yaml', 'extends: ../base/common.yaml\nscript: app.js\nargs: [c]\n');
  const { config, files, origins } = load(path.join(dir, 'app'));
  assert.deepEqual(files, [entry, base]);
  assert.deepEqual(config.args, ['c']);
  assert.equal(config.workers, 4);
  assert.equal(config.shutdownTimeout, 1234);
  // Paths from any file of the chain resolve against the entry file's directory.
  assert.equal(config.script, path.join(dir, 'app', 'app.js'));
  assert.equal(config.tmpDir, path.join(dir, 'app', 'run'));
  assert.equal(origins.workers, base);
  assert.equal(origins.args, entry);
  assert.equal(origins.script, entry);
  assert.equal(origins.env, base);
  assert.ok(config.env.includes('FOO'));
});

test('extends: chains of three files, JSON extending YAML', (t) => {
  const dir = tmpDir(t);
  const c = write(dir, 'shared/c.yaml', 'workers: 2\nkillTimeout: 100\nname: fromc\n');
  const b = write(dir, 'shared/b.yaml', 'extends: ./c.yaml\nworkers: 5\nname: fromb\n');
  const a = write(dir, 'nodesockd.json', {
    extends: './shared/b.yaml',
    script: 'a.js',
    tmpDir: 'run',
    name: 'froma',
  });
  const { config, files, origins } = load(dir);
  assert.deepEqual(files, [a, b, c]);
  assert.equal(config.workers, 5);
  assert.equal(config.killTimeout, 100);
  assert.equal(config.name, 'froma');
  assert.equal(origins.killTimeout, c);
  assert.equal(origins.workers, b);
});

test('extends: absolute path', (t) => {
  const dir = tmpDir(t);
  const base = write(dir, 'elsewhere/base.yml', 'workers: 7\n');
  write(dir, 'nodesockd.yaml', `extends: ${base}\nscript: a.js\ntmpDir: run\n`);
  assert.equal(load(dir).config.workers, 7);
});

test('deep merge: plain objects merged, arrays and scalars replaced', () => {
  const base = { a: { x: 1, y: { p: 1, q: 2 }, list: [1, 2] }, s: 'base', keep: true };
  const over = { a: { y: { q: 3 }, list: [9] }, s: 'over' };
  assert.deepEqual(deepMerge(base, over), {
    a: { x: 1, y: { p: 1, q: 3 }, list: [9] },
    s: 'over',
    keep: true,
  });
  assert.deepEqual(base.a.y, { p: 1, q: 2 }, 'inputs are not modified');
  assert.deepEqual(deepMerge({ a: 1 }, [1]), [1]);
});

test('extends: a cycle is reported, naming the file and the chain', (t) => {
  const dir = tmpDir(t);
  const a = write(dir, 'nodesockd.yaml', 'extends: ./b.yaml\nscript: a.js\ntmpDir: run\n');
  const b = write(dir, 'b.yaml', 'extends: ./nodesockd.yaml\n');
  const list = problems(() => load(dir));
  assert.equal(list.length, 1);
  hasProblem(list, b, 'extends', /circular extends: .*nodesockd\.yaml -> .*b\.yaml -> .*nodesockd\.yaml/);
  assert.ok(list[0]!.includes(a));

  const self = tmpDir(t);
  const s = write(self, 'nodesockd.yaml', 'extends: nodesockd.yaml\nscript: a.js\ntmpDir: run\n');
  hasProblem(
    problems(() => load(self)),
    s,
    'extends',
    /circular/,
  );
});

test('extends: package path from node_modules next to the config, and bare relative fallback', (t) => {
  const dir = tmpDir(t);
  write(dir, 'node_modules/@acme/nsd-base/package.json', { name: '@acme/nsd-base', version: '1.0.0' });
  const pkgFile = write(
    dir,
    'node_modules/@acme/nsd-base/nodesockd.base.yaml',
    'workers: 6\nenv: [ACME_TOKEN]\n',
  );
  const entry = write(
    dir,
    'nodesockd.yaml',
    'extends: "@acme/nsd-base/nodesockd.base.yaml"\nscript: a.js\ntmpDir: run\n',
  );
  const { config, files } = load(dir);
  assert.deepEqual(files, [entry, pkgFile]);
  assert.equal(config.workers, 6);
  assert.ok(config.env.includes('ACME_TOKEN'));

  // Not a package: resolved as a path relative to the file.
  const other = tmpDir(t);
  const rel = write(other, 'conf/shared.yaml', 'workers: 2\n');
  write(other, 'nodesockd.yaml', 'extends: conf/shared.yaml\nscript: a.js\ntmpDir: run\n');
  const loaded = load(other);
  assert.equal(loaded.config.workers, 2);
  assert.equal(loaded.files[1], rel);
});

test('extends: a target that does not exist names the extending file', (t) => {
  const dir = tmpDir(t);
  const entry = write(dir, 'nodesockd.yaml', 'extends: ./missing.yaml\nscript: a.js\ntmpDir: run\n');
  hasProblem(
    problems(() => load(dir)),
    entry,
    'extends',
    /not found: .*missing\.yaml/,
  );
  const dir2 = tmpDir(t);
  const entry2 = write(dir2, 'nodesockd.yaml', 'extends: "@nope/pkg/base.yaml"\nscript: a.js\ntmpDir: run\n');
  hasProblem(
    problems(() => load(dir2)),
    entry2,
    'extends',
    /cannot find "@nope\/pkg\/base\.yaml"/,
  );
});

test('an error inside a base file names the base file', (t) => {
  const dir = tmpDir(t);
  const base = write(dir, 'base.yaml', 'workers: 0\nbogus: 1\n');
  write(dir, 'nodesockd.yaml', 'extends: ./base.yaml\nscript: a.js\ntmpDir: run\n');
  const list = problems(() => load(dir));
  hasProblem(list, base, 'workers', /workers must be at least 1/);
  hasProblem(list, base, 'bogus', /unknown key "bogus"/);
  assert.equal(list.length, 2);
});

// ---------------------------------------------------------------------------------------
// Precedence

test('precedence: command line > file > defaults', (t) => {
  const dir = tmpDir(t);
  const file = write(
    dir,
    'nodesockd.yaml',
    'script: a.js\ntmpDir: run\nworkers: 2\nlistenVar: FILE_VAR\nenv: [FROM_FILE]\noutputPrefix: "f "\n',
  );
  const { config, origins } = load(dir, {
    overrides: {
      workers: '3',
      listenVar: 'CLI_VAR',
      script: 'b.js',
      env: ['FROM_CLI=1'],
      socketFile: 'x.{worker}.s',
    },
  });
  assert.equal(config.workers, 3);
  assert.equal(config.listenVar, 'CLI_VAR');
  assert.equal(config.script, path.join(dir, 'b.js'));
  assert.equal(config.socketFile, 'x.{worker}.s');
  assert.equal(config.outputPrefix, 'f ');
  assert.equal(config.killTimeout, DEFAULTS.killTimeout);
  // The command line's env list replaces the file's (the base set is still added).
  assert.ok(config.env.includes('FROM_CLI=1'));
  assert.ok(!config.env.includes('FROM_FILE'));
  assert.equal(origins.workers, 'command line');
  assert.equal(origins.outputPrefix, file);
  assert.equal(origins.killTimeout, 'default');
  // A numeric workers value and an empty repeatable --env are accepted as commander gives them.
  assert.equal(load(dir, { overrides: { workers: 4, env: [] } }).config.workers, 4);
  assert.ok(load(dir, { overrides: { env: [] } }).config.env.includes('FROM_FILE'));
});

test('devServer: file, --dev-server, --dev-server=port, --no-dev-server', (t) => {
  const dir = tmpDir(t);
  write(dir, 'nodesockd.yaml', 'script: a.js\ntmpDir: run\n');
  write(dir, 'port.yaml', 'script: a.js\ntmpDir: run\ndevServer: 9000\n');
  write(dir, 'on.yaml', 'script: a.js\ntmpDir: run\ndevServer: true\n');
  const dev = (configPath: string, devServer?: boolean | string | number) =>
    load(dir, { configPath, overrides: devServer === undefined ? {} : { devServer } }).config.devServer;
  assert.equal(dev('nodesockd.yaml'), false);
  assert.equal(dev('on.yaml'), DEV_SERVER_DEFAULT_PORT);
  assert.equal(dev('port.yaml'), 9000);
  assert.equal(dev('nodesockd.yaml', true), DEV_SERVER_DEFAULT_PORT);
  assert.equal(dev('port.yaml', true), 9000);
  assert.equal(dev('port.yaml', '8123'), 8123);
  assert.equal(dev('nodesockd.yaml', 8124), 8124);
  assert.equal(dev('port.yaml', false), false);
  hasProblem(
    problems(() => dev('nodesockd.yaml', 'abc')),
    'command line',
    '--dev-server',
    /devServer must be true, false or a TCP port number/,
  );
});

// ---------------------------------------------------------------------------------------
// Paths

test('paths with a config file resolve against its directory, from the file and the command line', (t) => {
  const dir = tmpDir(t);
  const cwd = tmpDir(t);
  const file = write(
    dir,
    'conf/app.yaml',
    'script: ../src/app.js\ntmpDir: /run/shop\ncwd: ..\nstdout: logs/out.log\nstderr: /var/log/err.log\n',
  );
  const { config, baseDir } = load(cwd, {
    configPath: path.relative(cwd, file),
    overrides: { tmpDir: 'sockets' },
  });
  const confDir = path.join(dir, 'conf');
  assert.equal(baseDir, confDir);
  assert.equal(config.script, path.join(dir, 'src/app.js'));
  assert.equal(config.cwd, dir);
  assert.equal(config.tmpDir, path.join(confDir, 'sockets'));
  assert.equal(config.stdout, path.join(confDir, 'logs/out.log'));
  assert.equal(config.stderr, '/var/log/err.log');
  assert.equal(config.ipcFile, path.join(confDir, 'sockets', 'nodesockd.ipc'));
});

test('paths without a config file (v1 usage) resolve against the cwd', (t) => {
  const dir = tmpDir(t);
  const { config, files, baseDir, origins } = load(dir, {
    overrides: { script: 'app.js', tmpDir: 'run', workers: '2' },
  });
  assert.deepEqual(files, []);
  assert.equal(baseDir, dir);
  assert.equal(config.script, path.join(dir, 'app.js'));
  assert.equal(config.tmpDir, path.join(dir, 'run'));
  assert.equal(config.cwd, dir);
  assert.equal(config.workers, 2);
  assert.equal(origins.script, 'command line');
  // ...but not when a config file is required.
  assert.match(
    problems(() =>
      load(dir, { overrides: { script: 'app.js', tmpDir: 'run' }, requireConfigFile: true }),
    )[0]!,
    /^no config file found in /,
  );
});

test('logicalCwd keeps a symlinked $PWD; loadConfig uses it by default', (t) => {
  const dir = tmpDir(t);
  const real = path.join(dir, 'releases', 'v2');
  fs.mkdirSync(real, { recursive: true });
  const link = path.join(dir, 'current');
  fs.symlinkSync(real, link);
  write(real, 'nodesockd.yaml', 'script: app.js\ntmpDir: run\n');
  const savedCwd = process.cwd();
  const savedPwd = process.env.PWD;
  t.after(() => {
    process.chdir(savedCwd);
    if (savedPwd === undefined) delete process.env.PWD;
    else process.env.PWD = savedPwd;
  });
  process.chdir(link);
  process.env.PWD = link;
  assert.equal(logicalCwd(), link);
  const { config, baseDir } = loadConfig({});
  assert.equal(baseDir, link);
  assert.equal(config.script, path.join(link, 'app.js'));
  // A $PWD that names another directory is ignored.
  process.env.PWD = dir;
  assert.equal(logicalCwd(), fs.realpathSync(real));
  delete process.env.PWD;
  assert.equal(logicalCwd(), fs.realpathSync(real));
});

test('ipcFile: relative to tmpDir, or absolute', (t) => {
  const dir = tmpDir(t);
  write(dir, 'rel.yaml', 'script: a.js\ntmpDir: /run/shop\nipcFile: ctl/shop.ipc\n');
  write(dir, 'abs.yaml', 'script: a.js\ntmpDir: /run/shop\nipcFile: /run/other/shop.ipc\n');
  assert.equal(load(dir, { configPath: 'rel.yaml' }).config.ipcFile, '/run/shop/ctl/shop.ipc');
  assert.equal(load(dir, { configPath: 'abs.yaml' }).config.ipcFile, '/run/other/shop.ipc');
  assert.equal(
    load(dir, { configPath: 'abs.yaml', overrides: { ipcFile: 'cli.ipc' } }).config.ipcFile,
    '/run/shop/cli.ipc',
  );
});

test('resolveIpcPath: --ipc-file wins, else the config; broken unrelated keys do not matter', (t) => {
  const dir = tmpDir(t);
  assert.equal(resolveIpcPath({ cwd: dir, ipcFile: 'x.ipc' }), path.join(dir, 'x.ipc'));
  assert.equal(resolveIpcPath({ cwd: dir, ipcFile: '/run/y.ipc' }), '/run/y.ipc');
  const noFile = problems(() => resolveIpcPath({ cwd: dir }));
  assert.match(noFile[0]!, new RegExp(`^no config file found in ${dir} .*--ipc-file`));

  write(dir, 'nodesockd.yaml', 'script: a.js\ntmpDir: run\n');
  assert.equal(resolveIpcPath({ cwd: dir }), path.join(dir, 'run', 'nodesockd.ipc'));
  write(dir, 'abs.yaml', 'tmpDir: run\nipcFile: /run/abs.ipc\nworkers: 0\nunknownThing: 1\n');
  assert.equal(resolveIpcPath({ cwd: dir, configPath: 'abs.yaml' }), '/run/abs.ipc');
  const noTmp = write(dir, 'notmp.yaml', 'script: a.js\n');
  hasProblem(
    problems(() => resolveIpcPath({ cwd: dir, configPath: 'notmp.yaml' })),
    noTmp,
    'tmpDir',
    /required.*--ipc-file/,
  );
  const badTmp = write(dir, 'badtmp.yaml', 'tmpDir: 5\n');
  hasProblem(
    problems(() => resolveIpcPath({ cwd: dir, configPath: 'badtmp.yaml' })),
    badTmp,
    'tmpDir',
    /tmpDir must be a string/,
  );
});

// ---------------------------------------------------------------------------------------
// env

test('env: base set always passed, user entries added, one entry per name', (t) => {
  const dir = tmpDir(t);
  write(
    dir,
    'nodesockd.yaml',
    'script: a.js\ntmpDir: run\nenv: [DATABASE_URL, NODE_ENV=production, A=1, A=2, PATH]\n',
  );
  const { env } = load(dir).config;
  assert.deepEqual(
    env.slice(0, 4),
    ['DATABASE_URL', 'NODE_ENV=production', 'A=2', 'PATH'],
    'user entries first, in order',
  );
  for (const name of DEFAULT_ENV) {
    assert.equal(env.filter((e) => e.split('=')[0] === name).length, 1, `${name} exactly once`);
  }
  assert.ok(!env.includes('NODE_ENV'));
  assert.equal(new Set(env).size, env.length);
});

// ---------------------------------------------------------------------------------------
// Errors

test('unknown key names the file and the key, with a suggestion', (t) => {
  const dir = tmpDir(t);
  const file = write(dir, 'nodesockd.yaml', 'script: a.js\ntmpDir: run\nworker: 2\nfrobnicate: true\n');
  const list = problems(() => load(dir));
  hasProblem(list, file, 'worker', /^unknown key "worker" \(did you mean "workers"\?\)$/);
  hasProblem(list, file, 'frobnicate', /^unknown key "frobnicate"$/);
  assert.equal(list.length, 2);
});

test('wrong types name the file, the key and what was expected', (t) => {
  const dir = tmpDir(t);
  const file = write(dir, 'nodesockd.json', {
    script: 5,
    tmpDir: 'run',
    workers: '2',
    args: 'x',
    spawnTimeout: 'soon',
    devServer: 'yes',
  });
  const list = problems(() => load(dir));
  hasProblem(list, file, 'script', /script must be a string \(got 5\)/);
  hasProblem(list, file, 'workers', /workers must be a number \(got "2"\)/);
  hasProblem(list, file, 'args', /expected array, received string/);
  hasProblem(list, file, 'spawnTimeout', /spawnTimeout must be a number of milliseconds/);
  hasProblem(list, file, 'devServer', /devServer must be true, false or a TCP port number/);
  assert.equal(list.length, 5, 'a wrong script does not also report "script is required"');
});

test('workers: 0 in a file and workers "abc" / "0" on the command line', (t) => {
  const dir = tmpDir(t);
  const file = write(dir, 'nodesockd.yaml', 'script: a.js\ntmpDir: run\nworkers: 0\n');
  hasProblem(
    problems(() => load(dir)),
    file,
    'workers',
    /workers must be at least 1 \(got 0\)/,
  );
  const cliDir = tmpDir(t);
  write(cliDir, 'nodesockd.yaml', 'script: a.js\ntmpDir: run\n');
  hasProblem(
    problems(() => load(cliDir, { overrides: { workers: 'abc' } })),
    'command line',
    '--workers',
    /workers must be a number \(got "abc"\)/,
  );
  hasProblem(
    problems(() => load(cliDir, { overrides: { workers: '0' } })),
    'command line',
    '--workers',
    /workers must be at least 1/,
  );
  hasProblem(
    problems(() => load(cliDir, { overrides: { workers: '1.5' } })),
    'command line',
    '--workers',
    /whole number/,
  );
});

test('socketFile without {worker}, or with a slash', (t) => {
  const dir = tmpDir(t);
  const file = write(dir, 'nodesockd.yaml', 'script: a.js\ntmpDir: run\nsocketFile: app.sock\n');
  hasProblem(
    problems(() => load(dir)),
    file,
    'socketFile',
    /must contain the \{worker\} placeholder/,
  );
  hasProblem(
    problems(() => load(dir, { overrides: { socketFile: 'sub/{worker}.sock' } })),
    'command line',
    '--socket-file',
    /file name, not a path/,
  );
});

test('missing script and tmpDir after merging', (t) => {
  const dir = tmpDir(t);
  const file = write(dir, 'nodesockd.yaml', 'workers: 2\n');
  const list = problems(() => load(dir));
  hasProblem(list, file, 'script', /script is required: set "script" in the config file or pass --script/);
  hasProblem(list, file, 'tmpDir', /tmpDir is required: set "tmpDir" in the config file or pass --tmp-dir/);
  assert.equal(list.length, 2);
  // Either may come from the command line.
  assert.equal(load(dir, { overrides: { script: 'a.js', tmpDir: 'run' } }).config.workers, 2);
});

test('no config file found: names the directory, what was looked for, and the options', (t) => {
  const dir = tmpDir(t);
  const list = problems(() => load(dir));
  assert.equal(list.length, 1);
  assert.match(list[0]!, new RegExp(`^no config file found in ${dir} `));
  assert.match(list[0]!, /nodesockd\.local\.\{yaml,yml,json\}/);
  assert.match(list[0]!, /--config/);
  assert.match(list[0]!, /--script .* --tmp-dir/);
  // Only one of script/tmpDir on the command line is not enough.
  assert.match(problems(() => load(dir, { overrides: { script: 'a.js' } }))[0]!, /^no config file found/);
});

test('nonexistent, unreadable-type and directory --config', (t) => {
  const dir = tmpDir(t);
  assert.deepEqual(
    problems(() => load(dir, { configPath: 'nope.yaml' })),
    [`${path.join(dir, 'nope.yaml')}: file not found`],
  );
  const conf = write(dir, 'app.conf', 'script=a.js\n');
  assert.match(
    problems(() => load(dir, { configPath: 'app.conf' }))[0]!,
    new RegExp(`^${conf}: unsupported`),
  );
  const empty = path.join(dir, 'emptydir');
  fs.mkdirSync(empty);
  assert.match(
    problems(() => load(dir, { configPath: 'emptydir' }))[0]!,
    new RegExp(`^${empty}: is a directory and holds no config file`),
  );
});

test('unparsable YAML and JSON give the file, line and column', (t) => {
  const dir = tmpDir(t);
  const yaml = write(dir, 'bad.yaml', 'script: a.js\ntmpDir: [run\nworkers: 2\n');
  const [y] = problems(() => load(dir, { configPath: 'bad.yaml' }));
  assert.match(y!, new RegExp(`^${yaml}: invalid YAML at line \\d+, column \\d+: \\S`));
  const dup = write(dir, 'dup.yaml', 'script: a.js\nscript: b.js\n');
  assert.match(
    problems(() => load(dir, { configPath: 'dup.yaml' }))[0]!,
    new RegExp(`^${dup}: invalid YAML at line 2, column 1: Map keys must be unique`),
  );
  const json = write(dir, 'bad.json', '{\n  "script": "a.js",\n  "tmpDir": "run",\n}\n');
  const [j] = problems(() => load(dir, { configPath: 'bad.json' }));
  assert.match(j!, new RegExp(`^${json}: invalid JSON: .* at line 4, column 1$`));
  const empty = write(dir, 'empty.yaml', '# nothing\n');
  assert.match(
    problems(() => load(dir, { configPath: 'empty.yaml' }))[0]!,
    new RegExp(`^${empty}: the file is empty`),
  );
});

test('a top level that is not an object', (t) => {
  const dir = tmpDir(t);
  const list = write(dir, 'list.yaml', '- script: a.js\n');
  const str = write(dir, 'str.json', '"script"');
  assert.deepEqual(
    problems(() => load(dir, { configPath: 'list.yaml' })),
    [`${list}: the top level must be an object of settings (key: value), not a list`],
  );
  assert.deepEqual(
    problems(() => load(dir, { configPath: 'str.json' })),
    [`${str}: the top level must be an object of settings (key: value), not a string`],
  );
});

test('socket path over the UNIX limit names tmpDir, socketFile and the length', (t) => {
  const dir = tmpDir(t);
  const longDir = `/run/${'d'.repeat(90)}`;
  const file = write(
    dir,
    'nodesockd.yaml',
    `script: a.js\ntmpDir: ${longDir}\nsocketFile: shop.{worker}.sock\n`,
  );
  const expectedLength = `${longDir}/shop.${'x'.repeat(WORKER_ID_LENGTH)}.sock`.length;
  assert.ok(expectedLength > 107);
  const list = problems(() => load(dir));
  hasProblem(
    list,
    file,
    'tmpDir',
    new RegExp(`would be ${expectedLength} bytes long.*107.*tmpDir.*socketFile`),
  );
  // Just under the limit is fine.
  const okDir = `/run/${'d'.repeat(107 - 5 - '/app.'.length - WORKER_ID_LENGTH - '.sock'.length)}`;
  assert.equal(`${okDir}/app.${'x'.repeat(WORKER_ID_LENGTH)}.sock`.length, 107);
  assert.equal(
    load(dir, { overrides: { tmpDir: okDir, socketFile: 'app.{worker}.sock' } }).config.tmpDir,
    okDir,
  );
});

test('bad env entries, in a file and on the command line', (t) => {
  const dir = tmpDir(t);
  const file = write(dir, 'nodesockd.yaml', 'script: a.js\ntmpDir: run\nenv: [GOOD, 1BAD, "WITH SPACE=x"]\n');
  const list = problems(() => load(dir));
  hasProblem(list, file, 'env[1]', /NAME or NAME=value \(got "1BAD"\)/);
  hasProblem(list, file, 'env[2]', /NAME or NAME=value \(got "WITH SPACE=x"\)/);
  hasProblem(
    problems(() => load(dir, { configPath: file, overrides: { env: ['OK', '-x'] } }).config),
    'command line',
    '--env',
    /got "-x"/,
  );
});

test('bad umask', (t) => {
  const dir = tmpDir(t);
  for (const [name, value] of [
    ['a.yaml', '"999"'],
    ['b.yaml', '1000'],
    ['c.yaml', 'true'],
  ] as const) {
    const file = write(dir, name, `script: a.js\ntmpDir: run\numask: ${value}\n`);
    hasProblem(
      problems(() => load(dir, { configPath: name })),
      file,
      'umask',
      /umask must be an octal string such as "007" or a number from 0 to 511/,
    );
  }
});

test('several problems from several sources are reported at once', (t) => {
  const dir = tmpDir(t);
  const base = write(dir, 'base.yaml', 'killTimeout: -1\n');
  const entry = write(
    dir,
    'nodesockd.yaml',
    'extends: ./base.yaml\ntmpDir: run\nworkers: 0\nsocketFile: x.sock\nlistenVar: "1x"\ncolour: blue\n',
  );
  const list = problems(() => load(dir, { overrides: { workers: 'many', devServer: 'on' } }));
  hasProblem(list, base, 'killTimeout', /greater than 0/);
  hasProblem(list, entry, 'workers', /at least 1/);
  hasProblem(list, entry, 'socketFile', /\{worker\}/);
  hasProblem(list, entry, 'listenVar', /valid environment variable name/);
  hasProblem(list, entry, 'colour', /unknown key/);
  hasProblem(list, 'command line', '--workers', /must be a number/);
  hasProblem(list, 'command line', '--dev-server', /true, false or a TCP port/);
  hasProblem(list, entry, 'script', /required/);
  assert.equal(list.length, 8, list.join('\n'));
});

test('ConfigError carries the problem lines', () => {
  const err = new ConfigError(['a: b: c', 'd: e: f']);
  assert.equal(err.message, 'a: b: c\nd: e: f');
  assert.deepEqual(err.problems, ['a: b: c', 'd: e: f']);
  assert.equal(err.name, 'ConfigError');
  assert.ok(err instanceof Error);
});

test('the command-line layer is plain values and labels: loadConfig knows no option names', (t) => {
  const dir = tmpDir(t);
  const file = write(dir, 'nodesockd.yaml', 'workers: 2\n');
  const bare = problems(() => loadConfig({ cwd: dir }));
  hasProblem(bare, file, 'script', /^script is required: set "script" in the config file$/);
  const labelled = problems(() =>
    loadConfig({
      cwd: dir,
      commandLine: { values: { workers: 'x' }, labels: { workers: '-w', tmpDir: '-t' } },
    }),
  );
  hasProblem(labelled, 'command line', '-w', /workers must be a number \(got "x"\)/);
  hasProblem(labelled, file, 'tmpDir', /or pass -t$/);
  const values = loadConfig({
    cwd: dir,
    commandLine: { values: { script: 'a.js', tmpDir: 'run' }, labels: {} },
  });
  assert.equal(values.origins.script, 'command line');
  assert.match(
    problems(() => loadConfig({ cwd: tmpDir(t) }))[0]!,
    /^no config file found in .*; give the path/,
  );
});
