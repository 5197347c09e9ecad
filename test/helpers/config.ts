/** Temp config files and ConfigError checks shared by the config tests. */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { TestContext } from 'node:test';
import { ConfigError } from '../../src/config/load';

/** A fresh directory, removed when the test ends. */
export function tmpDir(t: TestContext): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'nsd-cfg-'));
  t.after(() => fs.rmSync(dir, { recursive: true, force: true }));
  return dir;
}

/** Writes `content` (objects as JSON) to dir/name, creating parent dirs; returns the path. */
export function write(dir: string, name: string, content: string | object): string {
  const file = path.join(dir, name);
  fs.mkdirSync(path.dirname(file), { recursive: true });
  fs.writeFileSync(file, typeof content === 'string' ? content : JSON.stringify(content, null, 2));
  return file;
}

/** Runs fn, asserts it throws a ConfigError, checks the message format, returns the problems. */
export function problems(fn: () => unknown): string[] {
  let caught: unknown;
  try {
    fn();
  } catch (err) {
    caught = err;
  }
  assert.ok(caught instanceof ConfigError, `expected a ConfigError, got ${String(caught)}`);
  assert.equal(caught.message, caught.problems.join('\n'));
  assert.ok(caught.problems.length > 0);
  for (const line of caught.problems) {
    assert.ok(!line.includes('\n'), `one line per problem: ${line}`);
    assert.doesNotMatch(line, /"code"\s*:|^\s+at /, `no zod JSON or stack in: ${line}`);
  }
  return caught.problems;
}
