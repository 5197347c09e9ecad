/**
 * zod as the project uses it: the functional build (`zod/mini`), so that the bundles carry only
 * the schema types the project's schemas use (about 1 MB of daemon memory instead of the
 * ~6 MB `zod` costs loaded whole), with zod's English messages for the issues whose message
 * a schema does not give itself. Every schema module imports it from here as `z` (`import * as z`: a namespace import,
 * which lets the bundler leave out what no schema uses).
 */
import { en } from 'zod/locales';
import { config } from 'zod/mini';

config(en());

export * from 'zod/mini';
