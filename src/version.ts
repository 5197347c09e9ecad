declare const __NODESOCKD_VERSION__: string | undefined;

/** Injected from package.json at build time (tsup `define`). */
export const VERSION: string =
  typeof __NODESOCKD_VERSION__ === 'string' ? __NODESOCKD_VERSION__ : '0.0.0-dev';
