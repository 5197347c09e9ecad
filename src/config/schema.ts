/**
 * The configuration keys, written once: `fields` says how each key may be written in a file or
 * on the command line, and `configSchema` gives the value the daemon runs with and its default.
 * `Config` and `DEFAULTS` are derived from `configSchema`, and the checks at the end of this
 * file make a key that has a type but no default (or is missing from one of the two) a
 * compile error.
 */
import * as z from '../zod';
import { DEFAULT_IPC_FILE } from './discover';

/**
 * The base environment: these names are ALWAYS passed to workers (copied from the daemon's
 * environment when set there), also when the config lists its own `env`; the user's entries
 * are added to them (see effectiveEnv in load.ts).
 */
export const DEFAULT_ENV = ['PATH', 'HOME', 'USER', 'LANG', 'LC_ALL', 'TZ', 'NODE_ENV', 'NODE_OPTIONS'];

export const DEV_SERVER_DEFAULT_PORT = 8000;

/** What `stdout: null` / `stderr: null` resolve to: the output is discarded. */
export const DISCARD_OUTPUT = '/dev/null';

const ms = (what: string) =>
  z
    .number({ error: `${what} must be a number of milliseconds` })
    .check(
      z.int(`${what} must be a whole number of milliseconds`),
      z.positive(`${what} must be greater than 0`),
    );

/** A whole number from `min` (to `max`); each check's message names `what`. */
const wholeNumber = (what: string, min: number, max?: number, typeMessage = true) =>
  z
    .number(typeMessage ? { error: `${what} must be a number` } : undefined)
    .check(
      z.int(`${what} must be a whole number`),
      z.minimum(min, min === 0 ? `${what} must be 0 or more` : `${what} must be at least ${min}`),
      ...(max === undefined ? [] : [z.maximum(max, `${what} must be at most ${max}`)]),
    );

const UMASK_HINT = 'umask must be an octal string such as "007" or a number from 0 to 511 (0o777)';
const umask = z.union(
  [
    z.number().check(z.int(UMASK_HINT), z.minimum(0, UMASK_HINT), z.maximum(0o777, UMASK_HINT)),
    z.pipe(
      z.string().check(z.regex(/^0?[0-7]{3}$/, UMASK_HINT)),
      z.transform((s: string) => Number.parseInt(s, 8)),
    ),
  ],
  { error: UMASK_HINT },
);

/** A non-empty string; the message names the key. */
const nonEmpty = (what: string) =>
  z.string({ error: `${what} must be a string` }).check(z.minLength(1, `${what} must not be empty`));

const port = wholeNumber('devServer port', 1, 65535, false);

const LISTEN_HINT = 'must be a port (8080), "host:port", "[v6]:port" or { port, host, tls, accept }';

/** The TLS files of a `listen` entry (paths; relative ones resolve like the other paths, load.ts). */
export interface ListenTls {
  key: string;
  cert: string;
  ca?: string;
}

/** One `listen` address as the daemon runs it; with `tls`, the workers end TLS (fronts/tls-material.ts). */
export interface ListenEntry {
  host: string;
  port: number;
  tls?: ListenTls;
  /**
   * Who accepts its connections: the daemon, which hands each to a worker (the default), or
   * the serving workers themselves, on the listening socket the daemon gives them (fronts/shared-listener.ts).
   */
  accept?: ListenAccept;
}

export type ListenAccept = 'daemon' | 'workers';

/** `tls: { key, cert, ca? }` of a listen entry: file paths; null (with a problem added) when bad. */
function listenTls(value: unknown, problem: (message: string) => void): ListenTls | null {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    problem(
      'tls must be { key, cert } (the paths of a PEM private key and certificate), with an optional ca',
    );
    return null;
  }
  const { key, cert, ca, ...rest } = value as Record<string, unknown>;
  const extra = Object.keys(rest);
  if (extra.length > 0) {
    problem(`tls has unknown key(s) ${extra.join(', ')} (key, cert, ca)`);
    return null;
  }
  const files: Record<string, unknown> = { key, cert, ca };
  for (const name of ['key', 'cert', 'ca']) {
    const file = files[name];
    if (file === undefined && name === 'ca') continue;
    if (typeof file !== 'string' || file === '') {
      problem(`tls.${name} must be the path of a PEM file`);
      return null;
    }
  }
  return { key: key as string, cert: cert as string, ...(typeof ca === 'string' ? { ca } : {}) };
}

/**
 * `listen` as written: 8080, "127.0.0.1:8080", "[::1]:8080", { port, host, tls }, or a list of
 * them; always a list once parsed. Each bad entry is its own problem line.
 */
const listenSchema = z.pipe(
  z.unknown(),
  z.transform((value: unknown, ctx) => {
    const entries = Array.isArray(value) ? value : [value];
    const out: ListenEntry[] = [];
    for (const [i, entry] of entries.entries()) {
      const where = Array.isArray(value) ? `listen[${i}]` : 'listen';
      const problem = (message: string) =>
        ctx.issues.push({ code: 'custom', message: `${where} ${message}`, input: entry });
      let host = '0.0.0.0';
      let port: unknown = entry;
      let tls: ListenTls | null | undefined;
      let accept: ListenAccept | undefined;
      if (typeof entry === 'string') {
        const m = /^(?:(?:\[([0-9a-fA-F:.]+)\]|([^:[\]]+)):)?(\d+)$/.exec(entry.trim());
        if (!m) {
          problem(`"${entry}" ${LISTEN_HINT}`);
          continue;
        }
        host = m[1] ?? m[2] ?? host;
        port = Number(m[3]);
      } else if (typeof entry === 'object' && entry !== null && !Array.isArray(entry)) {
        const { port: p, host: h, tls: t, accept: a, ...rest } = entry as Record<string, unknown>;
        const extra = Object.keys(rest);
        if (extra.length > 0) {
          problem(`has unknown key(s) ${extra.join(', ')} (port, host, tls, accept)`);
          continue;
        }
        if (a !== undefined && a !== 'daemon' && a !== 'workers') {
          problem(`accept must be "daemon" or "workers", not ${JSON.stringify(a)}`);
          continue;
        }
        if (a === 'workers') accept = a;
        if (t !== undefined) {
          tls = listenTls(t, problem);
          if (tls === null) continue;
        }
        if (h !== undefined && (typeof h !== 'string' || h === '')) {
          problem('host must be a non-empty string');
          continue;
        }
        if (typeof h === 'string') host = h;
        port = p;
      } else if (typeof entry !== 'number') {
        problem(LISTEN_HINT);
        continue;
      }
      if (typeof port !== 'number' || !Number.isInteger(port) || port < 0 || port > 65535) {
        problem(`port ${String(port)} must be a whole number from 0 to 65535`);
        continue;
      }
      out.push({ host, port, ...(tls ? { tls } : {}), ...(accept ? { accept } : {}) });
    }
    return out;
  }),
);

/**
 * `sticky: true` with a `listen` entry whose workers accept themselves: the kernel, not the
 * daemon, picks the worker there, so no client can be kept on one (a one-line problem, or null).
 */
export function stickyAcceptProblem(listen: unknown, sticky: unknown): string | null {
  if (sticky !== true) return null;
  const entries: unknown[] = Array.isArray(listen) ? listen : [listen];
  const i = entries.findIndex(
    (e) => typeof e === 'object' && e !== null && (e as { accept?: unknown }).accept === 'workers',
  );
  if (i < 0) return null;
  const where = Array.isArray(listen) ? `listen[${i}]` : 'listen';
  return `sticky: true cannot be used with ${where} accept: "workers" (the kernel, not the daemon, picks the worker that accepts)`;
}

/** How each key may be written in a file or on the command line (camelCase, as the long options). */
const fields = {
  extends: nonEmpty('extends'),
  script: nonEmpty('script'),
  args: z.array(z.string()),
  nodeArgs: z.array(z.string()),
  cwd: nonEmpty('cwd'),
  // Any text (the original's example is "nodesockd example"); see name.ts for its safe forms.
  name: nonEmpty('name'),
  tmpDir: nonEmpty('tmpDir'),
  socketFile: z.string().check(
    z.refine((s: string) => s.includes('{worker}'), 'socketFile must contain the {worker} placeholder'),
    z.refine((s: string) => !s.includes('/'), 'socketFile must be a file name, not a path'),
  ),
  ipcFile: nonEmpty('ipcFile'),
  listenVar: z
    .string()
    .check(z.regex(/^[A-Za-z_][A-Za-z0-9_]*$/, 'listenVar must be a valid environment variable name')),
  workers: wholeNumber('workers', 1, 256),
  standby: wholeNumber('standby', 0, 64),
  readiness: z.enum(['message', 'connect'], { error: 'readiness must be "message" or "connect"' }),
  env: z.array(
    z.string().check(z.regex(/^[A-Za-z_][A-Za-z0-9_]*(=.*)?$/s, 'env entries must be NAME or NAME=value')),
  ),
  outputPrefix: z.string(),
  // null discards the output (the original's `stderr: null`).
  stdout: z.nullable(nonEmpty('stdout')),
  stderr: z.nullable(nonEmpty('stderr')),
  devServer: z.union([z.boolean(), port], { error: 'devServer must be true, false or a TCP port number' }),
  umask,
  spawnTimeout: ms('spawnTimeout'),
  onlineTimeout: ms('onlineTimeout'),
  shutdownTimeout: ms('shutdownTimeout'),
  killTimeout: ms('killTimeout'),
  upstreamKeepaliveTimeout: ms('upstreamKeepaliveTimeout'),
  maxStartAttempts: wholeNumber('maxStartAttempts', 1),
  symlinks: z.enum(['relative', 'absolute'], { error: 'symlinks must be "relative" or "absolute"' }),
  debug: z.boolean({ error: 'debug must be true or false' }),
  // A YAML number (`metrics: 9464`) is a port, as the docs write it; the daemon reads the string.
  metrics: z.union(
    [
      z.literal(false),
      z.pipe(
        wholeNumber('metrics port', 1, 65535, false),
        z.transform((n: number) => String(n)),
      ),
      nonEmpty('metrics'),
    ],
    { error: 'metrics must be false, "host:port", a port, or a UNIX socket path' },
  ),
  preload: z.union(
    [
      z.boolean(),
      z.strictObject({
        drain: z.optional(z.boolean({ error: 'preload.drain must be true or false' })),
        reconnect: z.optional(z.boolean({ error: 'preload.reconnect must be true or false' })),
      }),
    ],
    { error: 'preload must be true, false or { drain, reconnect }' },
  ),
  listen: listenSchema,
  sticky: z.boolean({ error: 'sticky must be true or false' }),
  handover: z.boolean({ error: 'handover must be true or false' }),
  websocketCloseGrace: ms('websocketCloseGrace'),
  stopIdleTimeout: ms('stopIdleTimeout'),
};

/** The keys the original nodesockd v2 writes in its `options:` block (options-block.ts). */
export const OPTIONS_BLOCK_KEYS = [
  'stdout',
  'stderr',
  'spawnTimeout',
  'onlineTimeout',
  'shutdownTimeout',
  'maxStartAttempts',
  'symlinks',
] as const;

/**
 * One file's worth of configuration (or the command line's), as written by the user. Every
 * key is optional here: required keys are checked after files and command line are merged,
 * by `loadConfig` (src/config/load.ts).
 */
export const fileConfigSchema = z.partial(
  z.strictObject({
    ...fields,
    options: z.partial(z.strictObject(pickFields(OPTIONS_BLOCK_KEYS))),
  }),
);

function pickFields<K extends keyof typeof fields>(keys: readonly K[]): Pick<typeof fields, K> {
  const out: Partial<Pick<typeof fields, K>> = {};
  for (const key of keys) out[key] = fields[key];
  return out as Pick<typeof fields, K>;
}

/**
 * The merged, defaulted and path-resolved configuration the daemon runs with. The keys
 * without a default are the ones `loadConfig` works out itself (RESOLVED_KEYS).
 */
export const configSchema = z.object({
  /** Absolute path of the app's entry script. */
  script: z.string(),
  args: z._default(fields.args, () => []),
  nodeArgs: z._default(fields.nodeArgs, () => []),
  /** Absolute working directory of the workers (the logical app dir by default). */
  cwd: z.string(),
  name: z._default(fields.name, 'app'),
  /** Absolute directory of the sockets. */
  tmpDir: z.string(),
  /** File name pattern containing `{worker}`, relative to tmpDir. */
  socketFile: z._default(fields.socketFile, 'app.{worker}.sock'),
  /** Absolute path of the control socket (written relative to tmpDir; this is its default name). */
  ipcFile: z._default(z.string(), DEFAULT_IPC_FILE),
  listenVar: z._default(fields.listenVar, 'LISTEN_ON'),
  workers: z._default(fields.workers, 1),
  /** Suspended spare workers, promoted into a slot whose worker died. */
  standby: z._default(fields.standby, 0),
  /** How a worker is seen online: its 'online' message, or also a successful connect. */
  readiness: z._default(fields.readiness, 'message'),
  /** The user's entries plus DEFAULT_ENV, one entry per name. */
  env: fields.env,
  outputPrefix: z._default(fields.outputPrefix, '[{worker}.{instance}] '),
  /** Absolute path of the workers' stdout file (DISCARD_OUTPUT to discard); unset: the daemon's stdout. */
  stdout: z.optional(z.string()),
  /**
   * Absolute path of the workers' stderr file (DISCARD_OUTPUT to discard); the stdout file
   * when only stdout is given; unset: the daemon's stderr.
   */
  stderr: z.optional(z.string()),
  /** false, or the TCP port on 127.0.0.1. */
  devServer: z._default(z.union([z.literal(false), port]), false),
  umask: z._default(umask, 0o007),
  spawnTimeout: z._default(fields.spawnTimeout, 5_000),
  onlineTimeout: z._default(fields.onlineTimeout, 30_000),
  /** Long enough for idle nginx keepalive connections to be closed by nginx (see below). */
  shutdownTimeout: z._default(fields.shutdownTimeout, 90_000),
  killTimeout: z._default(fields.killTimeout, 5_000),
  /**
   * nginx's upstream `keepalive_timeout` (ms; nginx's default is 60 s). Workers using serve()
   * keep idle connections open longer than this and, when draining, leave idle connections for
   * nginx to close. Lower both to make drains faster.
   */
  upstreamKeepaliveTimeout: z._default(fields.upstreamKeepaliveTimeout, 60_000),
  maxStartAttempts: z._default(fields.maxStartAttempts, 1),
  /** Target of the published symlinks: the socket's file name, or its absolute path. */
  symlinks: z._default(fields.symlinks, 'relative'),
  /** The daemon's debug log (as `daemon --debug`). */
  debug: z._default(fields.debug, false),
  /**
   * Where the daemon serves Prometheus metrics (`GET /metrics`): false (off), `"host:port"`,
   * a port (127.0.0.1), or a UNIX socket path (relative to tmpDir). See docs/operations.md.
   */
  metrics: z._default(fields.metrics, false),
  /**
   * What the preload does in each worker besides keeping it alive on EPIPE
   * (docs/worker-library.md#what-the-preload-does): the nginx-safe drain of the app's own
   * `server.close()`, and reconnecting to the next daemon. `true`/`false` set both.
   */
  preload: z._default(
    z.pipe(
      fields.preload,
      z.transform((v: z.output<typeof fields.preload>) =>
        typeof v === 'boolean'
          ? { drain: v, reconnect: v }
          : { drain: v.drain ?? true, reconnect: v.reconnect ?? true },
      ),
    ),
    { drain: true, reconnect: true },
  ),
  /**
   * The daemon's own TCP front (src/fronts/tcp-front.ts): addresses it listens on and whose
   * connections it hands to the serving workers. [] (the default): none.
   */
  listen: z._default(fields.listen, []),
  /**
   * The `listen` front routes each connection by a hash of the client address to a slot
   * (the next serving slot when that one cannot take it) instead of round robin.
   */
  sticky: z._default(fields.sticky, false),
  /**
   * A replaced worker's kept-alive connections move to its successor (docs/lifecycle.md#connection-handover);
   * false: they close the old way (for apps that bind state to a connection).
   */
  handover: z._default(fields.handover, true),
  /** How long an app has after 'shutdown' to close its WebSockets before the worker sends 1012. */
  websocketCloseGrace: z._default(fields.websocketCloseGrace, 1_000),
  /** How long a stopping worker with no successor leaves idle connections for nginx to close. */
  stopIdleTimeout: z._default(fields.stopIdleTimeout, 3_000),
});

export type Config = z.output<typeof configSchema>;

type Shape = typeof configSchema.shape;
type DefaultedKey = { [K in keyof Shape]: Shape[K] extends z.ZodMiniDefault ? K : never }[keyof Shape];

/** Each key's default, read from configSchema. `ipcFile`'s is a name relative to tmpDir. */
export const DEFAULTS = defaultsOf(configSchema.shape);

function defaultsOf(shape: Shape): Pick<Config, DefaultedKey> {
  const out: Record<string, unknown> = {};
  for (const [key, schema] of Object.entries(shape)) {
    if (schema instanceof z.ZodMiniDefault) out[key] = schema.def.defaultValue;
  }
  return out as Pick<Config, DefaultedKey>;
}

/** Keys whose value `loadConfig` works out itself: resolved paths and the env list. */
export type ResolvedKey = 'script' | 'cwd' | 'tmpDir' | 'ipcFile' | 'env' | 'stdout' | 'stderr';

/** Keys that hold file-system paths, resolved against the base directory. */
export const PATH_KEYS = ['script', 'cwd', 'tmpDir', 'stdout', 'stderr'] as const;

// Compile-time checks: every key a file may set is a Config key and the other way round, and
// every Config key either has a default or is worked out by loadConfig.
type Same<A, B> = [A] extends [B] ? ([B] extends [A] ? true : false) : false;
type FileKey = Exclude<keyof typeof fields, 'extends'>;
type Assert<T extends true> = T;
export type KeyChecks = [
  Assert<Same<FileKey, keyof Config>>,
  Assert<Same<Exclude<keyof Config, DefaultedKey>, Exclude<ResolvedKey, 'ipcFile'>>>,
];
