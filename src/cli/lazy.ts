/**
 * The modules a command loads only when it runs, so that a quick client command (`status`,
 * `resume`) does not pay for zod, yaml, prom-client and the daemon at start-up (the config
 * they need is read by src/config/quick-ipc.ts, which loads neither zod nor, most times, yaml). Each getter
 * loads its module on first use (the bundler keeps such a `require` lazy).
 */
/* eslint-disable @typescript-eslint/no-require-imports */
type ConfigLoad = typeof import('../config/load');
type Diagnostics = typeof import('../config/diagnostics');
type Schema = typeof import('../config/schema');
type Overrides = typeof import('./overrides');
type DaemonModule = typeof import('../daemon/daemon');
type Yaml = typeof import('yaml');
type Check = typeof import('./check');
type Generate = typeof import('./generate');
type Upgrade = typeof import('./upgrade');

export const lazy = {
  config: (): ConfigLoad => require('../config/load'),
  diagnostics: (): Diagnostics => require('../config/diagnostics'),
  schema: (): Schema => require('../config/schema'),
  overrides: (): Overrides => require('./overrides'),
  daemon: (): DaemonModule => require('../daemon/daemon'),
  yaml: (): Yaml => require('yaml'),
  check: (): Check => require('./check'),
  generate: (): Generate => require('./generate'),
  upgrade: (): Upgrade => require('./upgrade'),
};
