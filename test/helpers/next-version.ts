import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { ROOT } from './daemon';

export const NEXT_VERSION = '99.0.0';

/** A real second build of the package, as `npm install nodesockd@next` would lay it down. */
export function buildNextVersion(dir: string): string {
  for (const f of ['src', 'tsup.config.ts', 'tsconfig.json']) {
    fs.cpSync(path.join(ROOT, f), path.join(dir, f), { recursive: true });
  }
  const pkg = JSON.parse(fs.readFileSync(path.join(ROOT, 'package.json'), 'utf8')) as { version: string };
  fs.writeFileSync(
    path.join(dir, 'package.json'),
    JSON.stringify({ ...pkg, version: NEXT_VERSION }, null, 2),
  );
  fs.symlinkSync(path.join(ROOT, 'node_modules'), path.join(dir, 'node_modules'));
  execFileSync(process.execPath, [path.join(ROOT, 'node_modules/tsup/dist/cli-default.js')], {
    cwd: dir,
    stdio: 'ignore',
  });
  return path.join(dir, 'dist');
}

/** An installed copy of the current build, whose files the "upgrade" then replaces. */
export function install(dir: string): string {
  fs.cpSync(path.join(ROOT, 'dist'), path.join(dir, 'dist'), { recursive: true });
  fs.copyFileSync(path.join(ROOT, 'package.json'), path.join(dir, 'package.json'));
  fs.symlinkSync(path.join(ROOT, 'node_modules'), path.join(dir, 'node_modules'));
  return path.join(dir, 'dist/cli/bin.js');
}
