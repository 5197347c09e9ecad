/**
 * The daemon's modules that only some daemons use, loaded on first use so that a daemon
 * without the feature does not hold them in memory: prom-client (~10 MB with its
 * dependencies) only with `metrics`, semver only for `restart --upgrade`. The bundler keeps
 * such a `require` lazy.
 */
type MetricsModule = typeof import('./metrics');
type SemverGt = typeof import('semver/functions/gt');
type SemverValid = typeof import('semver/functions/valid');

export const lazy = {
  metrics: (): MetricsModule => require('./metrics'),
  // The two functions alone: the whole semver package costs ~6 MB.
  semverGt: (): SemverGt => require('semver/functions/gt'),
  semverValid: (): SemverValid => require('semver/functions/valid'),
};
