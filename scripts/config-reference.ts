// Writes the generated key reference into docs/config.md (npm run docs:config).
import fs from 'node:fs';
import path from 'node:path';
import { withReference } from '../src/config/reference';

const file = path.join(__dirname, '..', 'docs', 'config.md');
fs.writeFileSync(file, withReference(fs.readFileSync(file, 'utf8')));
console.log(`updated the key reference in ${path.relative(process.cwd(), file)}`);
