import { enableCompileCache } from './cache';

// First: the modules loaded from here on (commander, and zod and yaml when a command needs
// them) compile from the cache on Node ≥ 22.1.
enableCompileCache();
const { main } = require('./main') as typeof import('./main');
void main(process.argv);
