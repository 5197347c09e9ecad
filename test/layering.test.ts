/**
 * The layering of src/ (DEVELOPERS.md#layout): the shared floor (src/net, src/supervise,
 * src/stdio.ts) imports nothing above it, and no import cycle exists anywhere in src/. Read
 * from the source's own import statements (type-only imports included: a cycle of types is
 * still a tangle to read).
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';

const SRC = path.join(__dirname, '..', 'src');

function sources(dir: string): string[] {
  return fs.readdirSync(dir, { withFileTypes: true }).flatMap((entry) => {
    const full = path.join(dir, entry.name);
    if (entry.isDirectory()) return sources(full);
    return entry.name.endsWith('.ts') ? [full] : [];
  });
}

/** Every relative import of `file`, resolved to a source file. */
function importsOf(file: string): string[] {
  const text = fs.readFileSync(file, 'utf8');
  const found: string[] = [];
  for (const m of text.matchAll(/(?:^|\n)\s*(?:import|export)\b[^'"]*?from\s+['"](\.{1,2}\/[^'"]+)['"]/g)) {
    const spec = (m[1] ?? '').replace(/\.js$/, '');
    const base = path.resolve(path.dirname(file), spec);
    const target = [`${base}.ts`, path.join(base, 'index.ts')].find((p) => fs.existsSync(p));
    assert.ok(target, `${path.relative(SRC, file)} imports ${m[1]}, which is not a source file`);
    found.push(target);
  }
  return found;
}

const graph = new Map(sources(SRC).map((file) => [file, importsOf(file)]));
const rel = (file: string) => path.relative(SRC, file);

test('the shared floor (src/net, src/supervise, src/stdio.ts, src/repeated-warning.ts) imports nothing above it', () => {
  const floor = (file: string) =>
    rel(file).startsWith(`net${path.sep}`) ||
    rel(file).startsWith(`supervise${path.sep}`) ||
    rel(file) === 'stdio.ts' ||
    rel(file) === 'repeated-warning.ts';
  const upward: string[] = [];
  for (const [file, imports] of graph) {
    if (!floor(file)) continue;
    for (const target of imports) if (!floor(target)) upward.push(`${rel(file)} -> ${rel(target)}`);
  }
  assert.deepEqual(upward, []);
});

test('no import cycle in src/', () => {
  const cycles: string[] = [];
  const state = new Map<string, 'open' | 'done'>();
  const stack: string[] = [];
  const visit = (file: string): void => {
    state.set(file, 'open');
    stack.push(file);
    for (const next of graph.get(file) ?? []) {
      if (state.get(next) === 'open')
        cycles.push([...stack.slice(stack.indexOf(next)), next].map(rel).join(' -> '));
      else if (!state.has(next)) visit(next);
    }
    stack.pop();
    state.set(file, 'done');
  };
  for (const file of graph.keys()) if (!state.has(file)) visit(file);
  assert.deepEqual(cycles, []);
});

test('the reader of imports sees them (a file known to import the floor does)', () => {
  const front = graph.get(path.join(SRC, 'fronts', 'tcp-front.ts')) ?? [];
  assert.ok(front.map(rel).includes(path.join('net', 'handoff.ts')), front.map(rel).join(', '));
});
