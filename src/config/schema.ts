import { z } from 'zod';

/** Environment names every worker gets unless the config lists its own `env`. */
export const DEFAULT_ENV = ['PATH', 'HOME', 'USER', 'LANG', 'LC_ALL', 'TZ', 'NODE_ENV', 'NODE_OPTIONS'];

const ms = (what: string) =>
  z
    .number({ error: `${what} must be a number of milliseconds` })
    .int(`${what} must be a whole number of milliseconds`)
    .positive(`${what} must be greater than 0`);

const UMASK_HINT = 'umask must be an octal string such as "007" or a number from 0 to 511 (0o777)';
const umask = z.union(
  [
    z.number().int(UMASK_HINT).min(0, UMASK_HINT).max(0o777, UMASK_HINT),
    z
      .string()
      .regex(/^0?[0-7]{3}$/, UMASK_HINT)
      .transform((s) => Number.parseInt(s, 8)),
  ],
  { error: UMASK_HINT },
);

/** A non-empty string; the message names the key. */
const nonEmpty = (what: string) =>
  z.string({ error: `${what} must be a string` }).min(1, `${what} must not be empty`);

/**
 * One file's worth of configuration, as written by the user (camelCase keys, the same
 * names as the long CLI options). Every key is optional here: required keys are checked
 * after files and command line are merged, by `loadConfig` (src/config/load.ts).
 */
export const fileConfigSchema = z.strictObject({
  extends: nonEmpty('extends').optional(),
  script: nonEmpty('script').optional(),
  args: z.array(z.string()).optional(),
  nodeArgs: z.array(z.string()).optional(),
  cwd: nonEmpty('cwd').optional(),
  name: z
    .string()
    .regex(/^[A-Za-z0-9._-]+$/, 'name may contain only letters, digits, ".", "_" and "-"')
    .optional(),
  tmpDir: nonEmpty('tmpDir').optional(),
  socketFile: z
    .string()
    .refine((s) => s.includes('{worker}'), 'socketFile must contain the {worker} placeholder')
    .refine((s) => !s.includes('/'), 'socketFile must be a file name, not a path')
    .optional(),
  ipcFile: nonEmpty('ipcFile').optional(),
  listenVar: z
    .string()
    .regex(/^[A-Za-z_][A-Za-z0-9_]*$/, 'listenVar must be a valid environment variable name')
    .optional(),
  workers: z
    .number({ error: 'workers must be a number' })
    .int('workers must be a whole number')
    .min(1, 'workers must be at least 1')
    .max(256, 'workers must be at most 256')
    .optional(),
  standby: z
    .number({ error: 'standby must be a number' })
    .int('standby must be a whole number')
    .min(0, 'standby must be 0 or more')
    .max(64, 'standby must be at most 64')
    .optional(),
  readiness: z.enum(['message', 'connect'], { error: 'readiness must be "message" or "connect"' }).optional(),
  env: z
    .array(z.string().regex(/^[A-Za-z_][A-Za-z0-9_]*(=.*)?$/s, 'env entries must be NAME or NAME=value'))
    .optional(),
  outputPrefix: z.string().optional(),
  stdout: nonEmpty('stdout').optional(),
  stderr: nonEmpty('stderr').optional(),
  devServer: z
    .union(
      [
        z.boolean(),
        z
          .number()
          .int('devServer port must be a whole number')
          .min(1, 'devServer port must be at least 1')
          .max(65535, 'devServer port must be at most 65535'),
      ],
      { error: 'devServer must be true, false or a TCP port number' },
    )
    .optional(),
  umask: umask.optional(),
  spawnTimeout: ms('spawnTimeout').optional(),
  onlineTimeout: ms('onlineTimeout').optional(),
  shutdownTimeout: ms('shutdownTimeout').optional(),
  killTimeout: ms('killTimeout').optional(),
  upstreamKeepaliveTimeout: ms('upstreamKeepaliveTimeout').optional(),
  maxStartAttempts: z
    .number({ error: 'maxStartAttempts must be a number' })
    .int('maxStartAttempts must be a whole number')
    .min(1, 'maxStartAttempts must be at least 1')
    .optional(),
});

export type FileConfig = z.input<typeof fileConfigSchema>;

export const DEFAULTS = {
  args: [] as string[],
  nodeArgs: [] as string[],
  name: 'app',
  socketFile: 'app.{worker}.sock',
  ipcFile: 'nodesockd.ipc',
  listenVar: 'LISTEN_ON',
  workers: 1,
  standby: 0,
  readiness: 'message' as 'message' | 'connect',
  env: DEFAULT_ENV,
  outputPrefix: '[{worker}.{instance}] ',
  devServer: false as boolean | number,
  umask: 0o007,
  spawnTimeout: 5_000,
  onlineTimeout: 30_000,
  // Long enough for idle nginx keepalive connections to be closed by nginx (see below).
  shutdownTimeout: 90_000,
  killTimeout: 5_000,
  // nginx's default upstream keepalive_timeout; lower both to make drains faster.
  upstreamKeepaliveTimeout: 60_000,
  maxStartAttempts: 1,
};

/** The merged, defaulted and path-resolved configuration the daemon runs with. */
export interface Config {
  script: string;
  args: string[];
  nodeArgs: string[];
  /** Absolute working directory of the workers (the logical app dir by default). */
  cwd: string;
  name: string;
  tmpDir: string;
  /** File name pattern containing `{worker}`, relative to tmpDir. */
  socketFile: string;
  /** Absolute path of the control socket. */
  ipcFile: string;
  listenVar: string;
  workers: number;
  /** Suspended spare workers, promoted into a slot whose worker died. */
  standby: number;
  /** How a worker is seen online: its 'online' message, or also a successful connect. */
  readiness: 'message' | 'connect';
  env: string[];
  outputPrefix: string;
  stdout?: string;
  stderr?: string;
  /** false, or the TCP port on 127.0.0.1. */
  devServer: false | number;
  umask: number;
  spawnTimeout: number;
  onlineTimeout: number;
  shutdownTimeout: number;
  killTimeout: number;
  /**
   * nginx's upstream `keepalive_timeout` (ms). Workers using serve() keep idle connections open
   * longer than this and, when draining, leave idle connections for nginx to close.
   */
  upstreamKeepaliveTimeout: number;
  maxStartAttempts: number;
}

export const DEV_SERVER_DEFAULT_PORT = 8000;

/** Keys that hold file-system paths, resolved against the base directory. */
export const PATH_KEYS = ['script', 'cwd', 'tmpDir', 'stdout', 'stderr'] as const;
