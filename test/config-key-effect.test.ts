import assert from 'node:assert/strict';
import { test } from 'node:test';
import { diffConfig, KEY_EFFECT, KEY_EFFECTS, keysWithEffect } from '../src/config/key-effect';
import { type Config, configSchema } from '../src/config/schema';

/** A complete Config: the defaults plus the keys loadConfig works out itself. */
function config(over: Partial<Config> = {}): Config {
  return {
    ...configSchema.parse({
      script: '/app/a.js',
      cwd: '/app',
      tmpDir: '/run/app',
      ipcFile: '/run/app/x.ipc',
      env: ['PATH'],
    }),
    ...over,
  };
}

const none = { restart: [], tune: [], scale: [], rename: [], fixed: [] };

test('KEY_EFFECT classifies every Config key, and only those', () => {
  assert.deepEqual(Object.keys(KEY_EFFECT).sort(), Object.keys(configSchema.shape).sort());
  for (const effect of Object.values(KEY_EFFECT)) assert.ok(KEY_EFFECTS.includes(effect));
});

test('the classification the daemon has used so far', () => {
  assert.deepEqual(keysWithEffect('restart'), [
    'script',
    'args',
    'nodeArgs',
    'cwd',
    'socketFile',
    'listenVar',
    'readiness',
    'env',
    'upstreamKeepaliveTimeout',
    'preload',
    'websocketCloseGrace',
    'stopIdleTimeout',
  ]);
  assert.deepEqual(keysWithEffect('tune'), [
    'outputPrefix',
    'stdout',
    'stderr',
    'spawnTimeout',
    'onlineTimeout',
    'shutdownTimeout',
    'killTimeout',
    'maxStartAttempts',
    'sticky',
    'handover',
  ]);
  assert.deepEqual(keysWithEffect('scale'), ['workers', 'standby']);
  assert.deepEqual(keysWithEffect('rename'), ['name']);
  assert.deepEqual(keysWithEffect('fixed'), [
    'tmpDir',
    'ipcFile',
    'devServer',
    'umask',
    'symlinks',
    'debug',
    'metrics',
    'listen',
  ]);
});

test('diffConfig: equal configs, also as separate copies, differ in nothing', () => {
  const a = config({ args: ['--x'], env: ['PATH', 'A=1'] });
  const b = structuredClone(a);
  assert.notEqual(a.env, b.env);
  assert.deepEqual(diffConfig(a, b), none);
  assert.deepEqual(diffConfig(a, a), none);
});

test('diffConfig: each changed key lands under its effect', () => {
  const prev = config();
  const next = config({
    script: '/app/b.js',
    env: ['PATH', 'NEW=1'],
    killTimeout: 1,
    maxStartAttempts: 3,
    workers: 4,
    name: 'shop',
    tmpDir: '/run/other',
  });
  assert.deepEqual(diffConfig(prev, next), {
    restart: ['script', 'env'],
    tune: ['killTimeout', 'maxStartAttempts'],
    scale: ['workers'],
    rename: ['name'],
    fixed: ['tmpDir'],
  });
});

test('diffConfig: lists compare by content and order; a key set on one side only differs', () => {
  const prev = config({ args: ['a', 'b'] });
  assert.deepEqual(diffConfig(prev, config({ args: ['b', 'a'] })).restart, ['args']);
  assert.deepEqual(diffConfig(prev, config({ args: ['a', 'b', 'c'] })).restart, ['args']);
  assert.deepEqual(diffConfig(prev, config({ args: ['a', 'b'] })).restart, []);
  assert.deepEqual(diffConfig(prev, config({ stdout: '/var/log/app.log' })).tune, ['stdout']);
  assert.deepEqual(diffConfig(config({ devServer: 8000 }), config({ devServer: false })).fixed, [
    'devServer',
  ]);
});
