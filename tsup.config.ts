import { readFileSync } from 'node:fs';
import { sep } from 'node:path';
import { defineConfig, type Options } from 'tsup';

type Plugin = NonNullable<Options['esbuildPlugins']>[number];

const { version } = JSON.parse(readFileSync('package.json', 'utf8')) as { version: string };
const define = { __NODESOCKD_VERSION__: JSON.stringify(version) };

/**
 * The bin's `require('./main')` stays a require of dist/cli/main.js: a plain `status` compiles
 * only the small bin.js (src/cli/quick-status.ts), every other command main.js as well.
 */
const mainApart: Plugin = {
  name: 'nodesockd-main-apart',
  setup(build) {
    build.onResolve({ filter: /^\.\/main$/ }, (args) =>
      args.importer.endsWith(`${sep}cli${sep}bin.ts`) ? { path: './main.js', external: true } : undefined,
    );
  },
};

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
    entry: {
      'cli/bin': 'src/cli/bin.ts',
      'cli/main': 'src/cli/main.ts',
      'worker-preload': 'src/app/preload.ts',
    },
    esbuildPlugins: [mainApart],
    // zod's ESM build, bundled: only the schema types src/zod.ts's users need (src/zod.ts).
    noExternal: ['zod'],
    format: ['cjs'],
    target: 'node20',
    platform: 'node',
    sourcemap: true,
    banner: { js: '#!/usr/bin/env node' },
    define,
  },
]);
