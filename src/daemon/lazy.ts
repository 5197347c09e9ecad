/**
 * The daemon's modules that only some daemons use, loaded on first use so that a daemon
 * without the feature does not hold them in memory: prom-client (~10 MB with its
 * dependencies) only with `metrics`, semver only for `restart --upgrade`. The bundler keeps
 * such a `require` lazy.
 */
export const lazy = {
  metrics: (): typeof import('./metrics') => require('./metrics'),
  // The two functions alone: the whole semver package costs ~6 MB.
  semverGt: (): typeof import('semver/functions/gt') => require('semver/functions/gt'),
  semverValid: (): typeof import('semver/functions/valid') => require('semver/functions/valid'),
};
