import { defineConfig } from 'tsup';

export default defineConfig([
  {
    // The library: what `require('nodesockd')` and `import 'nodesockd'` load.
    entry: { index: 'src/index.ts' },
    format: ['cjs', 'esm'],
    dts: true,
    target: 'node20',
    platform: 'node',
    clean: true,
    sourcemap: true,
  },
  {
    // The CLI and daemon: one CommonJS file per entry, run by `nodesockd`.
    entry: { 'cli/bin': 'src/cli/bin.ts' },
    format: ['cjs'],
    target: 'node20',
    platform: 'node',
    sourcemap: true,
    banner: { js: '#!/usr/bin/env node' },
  },
]);
