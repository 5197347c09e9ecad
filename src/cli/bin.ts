import { enableCompileCache } from './cache';

// First: the modules loaded from here on (commander, and zod and yaml when a command needs
// them) compile from the cache on Node ≥ 22.1.
enableCompileCache();
// A plain `status` or `health` runs without commander (quick-status.ts); every other command line, and a
// status the quick path leaves alone, goes to the full CLI.
const { quickStatus } = require('./quick-status') as typeof import('./quick-status');
void quickStatus(process.argv).then((done) => {
  if (done) return;
  const { main } = require('./main') as typeof import('./main');
  return main(process.argv);
});
