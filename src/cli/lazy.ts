/**
 * The modules a command loads only when it runs, so that a quick client command (`status`,
 * `resume`) does not pay for zod, yaml, prom-client and the daemon at start-up (the config
 * they need is read by src/config/quick-ipc.ts, which loads neither zod nor, most times, yaml). Each getter
 * loads its module on first use (the bundler keeps such a `require` lazy).
 */
/* eslint-disable @typescript-eslint/no-require-imports */
export const lazy = {
  config: (): typeof import('../config/load') => require('../config/load'),
  diagnostics: (): typeof import('../config/diagnostics') => require('../config/diagnostics'),
  schema: (): typeof import('../config/schema') => require('../config/schema'),
  overrides: (): typeof import('./overrides') => require('./overrides'),
  daemon: (): typeof import('../daemon/daemon') => require('../daemon/daemon'),
  yaml: (): typeof import('yaml') => require('yaml'),
  check: (): typeof import('./check') => require('./check'),
  generate: (): typeof import('./generate') => require('./generate'),
  upgrade: (): typeof import('./upgrade') => require('./upgrade'),
};
