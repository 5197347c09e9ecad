import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import { cacheDir, yamlKeyCache } from '../src/cli/cache';
import { fullIpcPath } from '../src/cli/ipc-path';
import { ConfigError } from '../src/config/errors';
import { quickIpcPath } from '../src/config/quick-ipc';
import { tmpDir, write } from './helpers/config';

// The quick reader of the client commands (src/config/quick-ipc.ts) against the full,
// validating load it stands in for: the same path, or no answer (the full load then decides).

interface Case {
  what: string;
  files: Record<string, string>;
  configPath?: string;
  /** The quick reader answers (else it must leave the case to the full load). */
  quick: boolean;
}

const CASES: Case[] = [
  { what: 'YAML', files: { 'nodesockd.yaml': 'script: a.js\ntmpDir: run\n' }, quick: true },
  { what: 'JSON', files: { 'nodesockd.json': '{"script":"a.js","tmpDir":"run"}' }, quick: true },
  { what: 'JSON with a BOM', files: { 'nodesockd.json': '\uFEFF{"tmpDir":"run"}' }, quick: true },
  {
    what: 'absolute ipcFile, no tmpDir',
    files: { 'nodesockd.yaml': 'ipcFile: /run/x/a.ipc\n' },
    quick: true,
  },
  {
    what: 'relative ipcFile',
    files: { 'nodesockd.yml': 'tmpDir: /srv/run\nipcFile: ctl/../c.ipc\n' },
    quick: true,
  },
  {
    what: 'extends: the base gives tmpDir, the entry ipcFile',
    files: {
      'base.yaml': 'tmpDir: /srv/base\n',
      'nodesockd.json': '{"extends":"./base.yaml","ipcFile":"e.ipc"}',
    },
    quick: true,
  },
  {
    what: 'extends: the entry wins',
    files: {
      'base.yaml': 'tmpDir: /srv/base\nipcFile: b.ipc\n',
      'nodesockd.yaml': 'extends: ./base.yaml\ntmpDir: mine\n',
    },
    quick: true,
  },
  {
    what: '--config names a directory',
    files: { 'app/.nodesockd.yaml': 'tmpDir: run\n' },
    configPath: 'app',
    quick: true,
  },
  {
    what: 'other keys broken, unknown or in options',
    files: {
      'nodesockd.yaml': 'tmpDir: run\nworkers: 0\nbogus: 1\noptions:\n  tmpDir: elsewhere\numask: 0022\n',
    },
    quick: true,
  },
  { what: 'tmpDir a number', files: { 'nodesockd.yaml': 'tmpDir: 5\n' }, quick: false },
  { what: 'tmpDir empty', files: { 'nodesockd.json': '{"tmpDir":""}' }, quick: false },
  { what: 'tmpDir null', files: { 'nodesockd.yaml': 'tmpDir:\n' }, quick: false },
  { what: 'ipcFile a list', files: { 'nodesockd.yaml': 'tmpDir: run\nipcFile: [a]\n' }, quick: false },
  { what: 'no tmpDir', files: { 'nodesockd.yaml': 'script: a.js\n' }, quick: false },
  { what: 'YAML syntax error', files: { 'nodesockd.yaml': 'tmpDir: run\nx: [\n' }, quick: false },
  { what: 'JSON syntax error', files: { 'nodesockd.json': '{"tmpDir": "run",}' }, quick: false },
  { what: 'empty file', files: { 'nodesockd.yaml': '# nothing\n' }, quick: false },
  { what: 'a list at the top', files: { 'nodesockd.yaml': '- tmpDir: run\n' }, quick: false },
  { what: 'no config file', files: { 'other.yaml': 'tmpDir: run\n' }, quick: false },
  { what: '--config missing', files: {}, configPath: 'gone.yaml', quick: false },
  { what: '--config empty', files: { 'nodesockd.yaml': 'tmpDir: run\n' }, configPath: '', quick: false },
  { what: 'unsupported type', files: { 'x.toml': 'tmpDir = "run"\n' }, configPath: 'x.toml', quick: false },
  {
    what: 'circular extends',
    files: { 'a.yaml': 'extends: ./nodesockd.yaml\n', 'nodesockd.yaml': 'extends: ./a.yaml\ntmpDir: run\n' },
    quick: false,
  },
  {
    what: 'extends a missing file',
    files: { 'nodesockd.yaml': 'extends: ./no.yaml\ntmpDir: run\n' },
    quick: false,
  },
  { what: 'extends empty', files: { 'nodesockd.json': '{"extends":"","tmpDir":"run"}' }, quick: false },
];

function full(configPath: string | undefined, cwd: string): { path: string } | { error: string } {
  try {
    return { path: fullIpcPath(configPath, cwd) };
  } catch (err) {
    assert.ok(err instanceof ConfigError, String(err));
    return { error: err.message };
  }
}

for (const c of CASES) {
  test(`quick reader, ${c.what}: ${c.quick ? 'the path the full load finds' : 'left to the full load'}`, (t) => {
    const dir = tmpDir(t);
    for (const [name, text] of Object.entries(c.files)) write(dir, name, text);
    const expected = full(c.configPath, dir);
    const quick = quickIpcPath({ configPath: c.configPath, cwd: dir });
    if (c.quick) {
      assert.ok('path' in expected, `the full load fails: ${JSON.stringify(expected)}`);
      assert.equal(quick, expected.path);
    } else {
      assert.equal(quick, undefined, `full load: ${JSON.stringify(expected)}`);
    }
  });
}

test('the YAML memo: asked for a text it has seen, a changed text is parsed anew, a corrupt memo is ignored', (t) => {
  const dir = tmpDir(t);
  const cache = path.join(dir, 'cache');
  fs.mkdirSync(cache, { mode: 0o700 });
  const memoFile = path.join(cache, 'config-keys.json');
  write(dir, 'nodesockd.yaml', 'tmpDir: aa\n');
  const quick = () => quickIpcPath({ cwd: dir }, yamlKeyCache(cache));
  assert.equal(quick(), path.join(dir, 'aa', 'nodesockd.ipc'));
  const memo = JSON.parse(fs.readFileSync(memoFile, 'utf8')) as Array<{ h: string; keys: object }>;
  assert.deepEqual(
    memo.map((e) => e.keys),
    [{ tmpDir: 'aa' }],
  );
  // What the memo says for this text is what is used (so the yaml package is not loaded).
  fs.writeFileSync(memoFile, JSON.stringify([{ h: memo[0]!.h, keys: { tmpDir: 'zz' } }]));
  assert.equal(quick(), path.join(dir, 'zz', 'nodesockd.ipc'));
  // Another text of the same length: its own entry.
  write(dir, 'nodesockd.yaml', 'tmpDir: bb\n');
  assert.equal(quick(), path.join(dir, 'bb', 'nodesockd.ipc'));
  assert.equal((JSON.parse(fs.readFileSync(memoFile, 'utf8')) as unknown[]).length, 2);
  fs.writeFileSync(memoFile, '{not json');
  assert.equal(quick(), path.join(dir, 'bb', 'nodesockd.ipc'));
  fs.writeFileSync(memoFile, JSON.stringify([{ h: 'x', keys: { tmpDir: 5 } }, 7, null]));
  assert.equal(quick(), path.join(dir, 'bb', 'nodesockd.ipc'));
  assert.deepEqual(
    (JSON.parse(fs.readFileSync(memoFile, 'utf8')) as Array<{ keys: object }>).map((e) => e.keys),
    [{ tmpDir: 'bb' }],
  );
});

test('cacheDir: a private directory of this user, or none', (t) => {
  const base = tmpDir(t);
  const dir = cacheDir(base);
  assert.equal(dir, path.join(base, `nodesockd-${process.getuid!()}`));
  assert.equal(fs.statSync(dir).mode & 0o777, 0o700);
  assert.equal(cacheDir(base), dir, 'found again');
  fs.chmodSync(dir, 0o770);
  assert.equal(cacheDir(base), undefined, 'group-writable');
  fs.rmSync(dir, { recursive: true });
  const elsewhere = path.join(base, 'elsewhere');
  fs.mkdirSync(elsewhere, { mode: 0o700 });
  fs.symlinkSync(elsewhere, dir);
  assert.equal(cacheDir(base), undefined, 'a symlink');
  fs.rmSync(dir);
  fs.writeFileSync(dir, '');
  assert.equal(cacheDir(base), undefined, 'a file');
  assert.equal(cacheDir(path.join(base, 'missing', 'parent')), undefined, 'cannot be created');
  assert.equal(yamlKeyCache(undefined), undefined);
});
