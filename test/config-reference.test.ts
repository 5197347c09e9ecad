import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import { configReference, normaliseTable, REFERENCE_END, REFERENCE_START } from '../src/config/reference';
import { configSchema } from '../src/config/schema';

const doc = fs.readFileSync(path.join(__dirname, '..', 'docs', 'config.md'), 'utf8');

test('the key reference in docs/config.md is the one the schema generates (npm run docs:config)', () => {
  const region = doc.slice(doc.indexOf(REFERENCE_START), doc.indexOf(REFERENCE_END) + REFERENCE_END.length);
  assert.equal(normaliseTable(region), normaliseTable(configReference()));
});

test('every key of the schema is in the reference and described in docs/config.md', () => {
  for (const key of Object.keys(configSchema.shape)) {
    assert.match(configReference(), new RegExp(`\\| \`${key}\` \\|`));
    assert.match(doc, new RegExp(`^\\| \`${key}\` `, 'm'), `docs/config.md's key table describes ${key}`);
  }
});
