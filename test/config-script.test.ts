import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { afterEach, describe, test } from 'node:test';
import { stringify } from 'yaml';
import { loadOptions } from '../src/cli/overrides';
import { loadConfig } from '../src/config/load';
import { type AppDir, makeApp, teardown } from './helpers/app';
import { problems, tmpDir } from './helpers/config';
import { cli, Daemon, FIXTURES } from './helpers/daemon';
import { getJson } from './helpers/http';

const PLAIN = path.join(FIXTURES, 'plain.js');
const escapeRe = (s: string) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

let daemon: Daemon | undefined;
let app: AppDir | undefined;

afterEach(async () => {
  if (app) await teardown(daemon, app);
  daemon = undefined;
  app = undefined;
});

describe('loadConfig for the daemon: script must be an existing file', () => {
  const daemonLoad = (dir: string, overrides = {}) =>
    loadConfig({ ...loadOptions(undefined, overrides), cwd: dir, scriptMustExist: true });

  test('a missing script: one line naming the file, the key and the resolved path', (t) => {
    const dir = tmpDir(t);
    const file = path.join(dir, 'nodesockd.yaml');
    fs.writeFileSync(file, 'script: app/missing.js\ntmpDir: run\n');
    const missing = path.join(dir, 'app', 'missing.js');
    assert.deepEqual(
      problems(() => daemonLoad(dir)),
      [`${file}: script: the script ${missing} does not exist`],
    );
    // Other commands (check, nginx, config --local) still load it.
    assert.equal(loadConfig({ cwd: dir }).config.script, missing);
  });

  test('a directory as script is not a file', (t) => {
    const dir = tmpDir(t);
    fs.mkdirSync(path.join(dir, 'app'));
    const file = path.join(dir, 'nodesockd.yaml');
    fs.writeFileSync(file, 'script: app\ntmpDir: run\n');
    assert.deepEqual(
      problems(() => daemonLoad(dir)),
      [`${file}: script: the script ${path.join(dir, 'app')} is not a file (it is a directory)`],
    );
  });

  test('the line names the file the key came from: a base file, or the command line', (t) => {
    const dir = tmpDir(t);
    const base = path.join(dir, 'base.yaml');
    fs.writeFileSync(base, 'script: gone.js\n');
    fs.writeFileSync(path.join(dir, 'nodesockd.yaml'), 'extends: ./base.yaml\ntmpDir: run\n');
    assert.deepEqual(
      problems(() => daemonLoad(dir)),
      [`${base}: script: the script ${path.join(dir, 'gone.js')} does not exist`],
    );
    assert.deepEqual(
      problems(() => daemonLoad(dir, { script: 'cli.js' })),
      [`command line: --script: the script ${path.join(dir, 'cli.js')} does not exist`],
    );
    fs.writeFileSync(path.join(dir, 'cli.js'), '');
    assert.equal(daemonLoad(dir, { script: 'cli.js' }).config.script, path.join(dir, 'cli.js'));
  });
});

describe('the daemon binary and a missing script', () => {
  test('daemon -c <file> exits non-zero at start with one line naming script and the path', async (t) => {
    const dir = tmpDir(t);
    fs.mkdirSync(path.join(dir, 'run'));
    const file = path.join(dir, 'nodesockd.yaml');
    fs.writeFileSync(file, stringify({ script: 'server.js', tmpDir: 'run' }));
    const r = await cli(['daemon', '-c', file]);
    assert.notEqual(r.code, 0);
    const lines = r.stderr.split('\n').filter((l) => l.trim() !== '');
    assert.deepEqual(lines, [
      `nodesockd: ${file}: script: the script ${path.join(dir, 'server.js')} does not exist`,
    ]);
    assert.deepEqual(fs.readdirSync(path.join(dir, 'run')), [], 'nothing was created in tmpDir');
  });

  test('reload to a missing script keeps the old config and the workers, and says why', async () => {
    const a = makeApp({ workers: 2 });
    app = a;
    const d = await Daemon.start(['daemon', '-c', a.configFile], a.ipcFile, { online: 2 });
    daemon = d;
    const before = await d.slotPids();
    const missing = path.join(a.dir, 'renamed-server.js');
    fs.writeFileSync(a.configFile, stringify({ script: missing, tmpDir: 'run', workers: 2 }));

    const r = await d.cli(['reload']);
    assert.notEqual(r.code, 0);
    assert.match(
      r.stderr,
      new RegExp(
        `^nodesockd: .*${escapeRe(a.configFile)}: script: the script ${escapeRe(missing)} does not exist$`,
        'm',
      ),
    );

    const slots = (await d.status()).workers.filter((w) => w.slot !== null).sort((a, b) => a.slot! - b.slot!);
    assert.deepEqual(
      slots.map((w) => w.pid),
      before,
      'the same workers still serve',
    );
    assert.deepEqual(
      slots.map((w) => w.state),
      ['online', 'online'],
    );
    for (const slot of [0, 1]) {
      const body = await getJson<{ pid: number }>({ socketPath: a.published(slot) });
      assert.equal(body.pid, before[slot]);
    }
    const config = JSON.parse((await d.cli(['config', '--json'])).stdout) as { config: { script: string } };
    assert.equal(config.config.script, PLAIN, 'the running config is the old one');
  });
});
