import { readFileSync } from 'node:fs';
import { defineConfig } from 'tsup';

const { version } = JSON.parse(readFileSync('package.json', 'utf8')) as { version: string };
const define = { __NODESOCKD_VERSION__: JSON.stringify(version) };

export default defineConfig([
  {
    // The library: what `require('nodesockd')` and `import 'nodesockd'` load.
    entry: { index: 'src/index.ts', 'client/index': 'src/client/index.ts' },
    format: ['cjs', 'esm'],
    dts: true,
    target: 'node20',
    platform: 'node',
    sourcemap: true,
    define,
  },
  {
    // The CLI and daemon: one CommonJS file per entry, run by `nodesockd`. The preload keeps its
    // name dist/worker-preload.js: the daemon passes that path to `node --require`.
    entry: { 'cli/bin': 'src/cli/bin.ts', 'worker-preload': 'src/app/preload.ts' },
    format: ['cjs'],
    target: 'node20',
    platform: 'node',
    sourcemap: true,
    banner: { js: '#!/usr/bin/env node' },
    define,
  },
]);
