/**
 * Loading the configuration (SPEC §3): discovery, JSON/YAML parsing, `extends` chains,
 * command-line overrides, validation with one line per problem, path resolution.
 *
 * Precedence is command line > config file(s) > DEFAULTS. Every problem found is collected
 * before a single ConfigError is thrown, each as `<file or 'command line'>: <key>: <message>`.
 */
import fs from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { type Document, isMap, isScalar, parseDocument } from 'yaml';
import type { z } from 'zod';
import { ConfigError } from './errors';
import {
  type Config,
  DEFAULT_ENV,
  DEFAULTS,
  DEV_SERVER_DEFAULT_PORT,
  fileConfigSchema,
  PATH_KEYS,
} from './schema';

export { ConfigError } from './errors';

/** Raw values as commander gives them (strings mostly); every field optional. */
export interface CliOverrides {
  script?: string;
  listenVar?: string;
  tmpDir?: string;
  socketFile?: string;
  ipcFile?: string;
  workers?: string | number;
  env?: string[];
  outputPrefix?: string;
  /** true = on (the file's port if it gives one, else 8000); 'NNNN' or NNNN = that port; false = off. */
  devServer?: boolean | string | number;
}

export interface LoadedConfig {
  config: Config;
  /** Absolute paths of the files read: the entry file first, then the files it extends, in order. */
  files: string[];
  /** Directory relative paths were resolved against: the entry file's, else the (logical) cwd. */
  baseDir: string;
  /** Top-level key -> where its value came from: an absolute file path, 'command line' or 'default'. */
  origins: Record<string, string>;
}

/** Names looked for, in this order, when no --config is given. */
export const CONFIG_FILE_NAMES = [
  'nodesockd.local.yaml',
  'nodesockd.local.yml',
  'nodesockd.local.json',
  '.nodesockd.local.yaml',
  '.nodesockd.local.yml',
  '.nodesockd.local.json',
  'nodesockd.yaml',
  'nodesockd.yml',
  'nodesockd.json',
  '.nodesockd.yaml',
  '.nodesockd.yml',
  '.nodesockd.json',
] as const;

/** sun_path is 108 bytes on Linux, including the terminating NUL. */
export const MAX_SOCKET_PATH_BYTES = 107;
/** Length of a worker id, which replaces `{worker}` in a worker's unique socket name. */
/** Worker ids are `w` and 8 hex digits (src/daemon/worker.ts). */
export const WORKER_ID_LENGTH = 9;

const COMMAND_LINE = 'command line';
const LOOKED_FOR =
  'nodesockd.local.{yaml,yml,json}, .nodesockd.local.{yaml,yml,json}, nodesockd.{yaml,yml,json}, .nodesockd.{yaml,yml,json}';

const OPTION_NAMES: Record<keyof CliOverrides, string> = {
  script: '--script',
  listenVar: '--listen-var',
  tmpDir: '--tmp-dir',
  socketFile: '--socket-file',
  ipcFile: '--ipc-file',
  workers: '--workers',
  env: '--env',
  outputPrefix: '--output-prefix',
  devServer: '--dev-server',
};

type Values = Record<string, unknown>;

interface Problem {
  /** A file path, 'command line', or '' for problems that belong to neither. */
  source: string;
  key?: string;
  message: string;
}

const formatProblem = (p: Problem): string =>
  [p.source, p.key, p.message].filter((part) => part !== undefined && part !== '').join(': ');

const errorCode = (err: unknown): string | undefined =>
  err && typeof err === 'object' && 'code' in err ? String((err as { code: unknown }).code) : undefined;

const errorText = (err: unknown): string => (err instanceof Error ? err.message : String(err));

function isPlainObject(v: unknown): v is Values {
  if (v === null || typeof v !== 'object' || Array.isArray(v)) return false;
  const proto = Object.getPrototypeOf(v);
  return proto === Object.prototype || proto === null;
}

/**
 * The current directory as the user sees it: `$PWD` when it names the same directory as
 * process.cwd() (so a symlinked release dir such as /srv/app/current keeps that path and a
 * restart picks up the new release), else process.cwd().
 */
export function logicalCwd(): string {
  const physical = process.cwd();
  const pwd = process.env.PWD;
  if (pwd && path.isAbsolute(pwd)) {
    try {
      if (fs.realpathSync(pwd) === physical) return path.normalize(pwd);
    } catch {
      // $PWD is stale or unreadable: fall back to the physical directory.
    }
  }
  return physical;
}

/** The first config file (CONFIG_FILE_NAMES order) that exists in `dir`, as `dir`-joined path. */
export function findConfigFile(dir: string): string | undefined {
  for (const name of CONFIG_FILE_NAMES) {
    const candidate = path.join(dir, name);
    const st = fs.statSync(candidate, { throwIfNoEntry: false });
    if (st && !st.isDirectory()) return candidate;
  }
  return undefined;
}

// ---------------------------------------------------------------------------------------
// Reading one file

type ReadResult = { ok: true; data: Values } | { ok: false; message: string };

function readConfigFile(file: string): ReadResult {
  const ext = path.extname(file).toLowerCase();
  if (ext !== '.json' && ext !== '.yaml' && ext !== '.yml') {
    return {
      ok: false,
      message: `unsupported config file type "${ext || '(no extension)'}": use .json, .yaml or .yml`,
    };
  }
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (err) {
    const code = errorCode(err);
    if (code === 'ENOENT') return { ok: false, message: 'file not found' };
    if (code === 'EISDIR') return { ok: false, message: 'is a directory, not a config file' };
    if (code === 'EACCES' || code === 'EPERM')
      return { ok: false, message: 'cannot read the file: permission denied' };
    return { ok: false, message: `cannot read the file: ${errorText(err)}` };
  }
  if (text.charCodeAt(0) === 0xfeff) text = text.slice(1);
  if (text.trim() === '') return { ok: false, message: 'the file is empty; expected an object of settings' };

  let value: unknown;
  if (ext === '.json') {
    try {
      value = JSON.parse(text);
    } catch (err) {
      return { ok: false, message: `invalid JSON: ${describeJsonError(errorText(err), text)}` };
    }
  } else {
    const doc = parseDocument(text);
    const first = doc.errors[0];
    if (first) {
      // Only the first error: later ones are usually knock-on effects of it.
      const reason = first.message.split('\n')[0]!.replace(/ at line \d+, column \d+:?$/, '');
      const pos = first.linePos?.[0];
      const where = pos ? ` at line ${pos.line}, column ${pos.col}` : '';
      return { ok: false, message: `invalid YAML${where}: ${reason}` };
    }
    value = doc.toJS();
    if (isPlainObject(value)) fixYamlOctalUmask(doc, text, value);
  }
  if (value === null || value === undefined) {
    return { ok: false, message: 'the file is empty; expected an object of settings' };
  }
  if (!isPlainObject(value)) {
    const got = Array.isArray(value) ? 'a list' : `a ${typeof value}`;
    return { ok: false, message: `the top level must be an object of settings (key: value), not ${got}` };
  }
  return { ok: true, data: value };
}

/** Turns "… in JSON at position N" into "… at line L, column C" (Node 20 gives only the position). */
function describeJsonError(message: string, text: string): string {
  const m = /^(.*?)(?: in JSON)? at position (\d+)(?: \(line \d+ column \d+\))?$/.exec(message);
  if (!m) return message;
  const pos = Number(m[2]);
  const before = text.slice(0, pos);
  const line = before.split('\n').length;
  const col = pos - before.lastIndexOf('\n');
  return `${m[1]} at line ${line}, column ${col}`;
}

/**
 * YAML 1.2 reads `umask: 0022` as the decimal number 22, which is never what is meant:
 * a umask written with a leading zero is octal, as in the shell.
 */
function fixYamlOctalUmask(doc: Document, text: string, value: Values): void {
  if (!isMap(doc.contents)) return;
  const node = doc.contents.get('umask', true);
  if (!isScalar(node) || typeof node.value !== 'number' || !node.range) return;
  const src = text.slice(node.range[0], node.range[1]).trim();
  if (/^0[0-7]+$/.test(src)) value.umask = Number.parseInt(src, 8);
}

// ---------------------------------------------------------------------------------------
// Validation

const KNOWN_KEYS = Object.keys(fileConfigSchema.shape);
const SHAPE = fileConfigSchema.shape as Record<string, z.ZodType>;

function formatIssuePath(p: readonly PropertyKey[]): string {
  let out = '';
  for (const part of p) {
    if (typeof part === 'number') out += `[${part}]`;
    else out += out === '' ? String(part) : `.${String(part)}`;
  }
  return out;
}

function valueAt(root: unknown, p: readonly PropertyKey[]): unknown {
  let cur: unknown = root;
  for (const part of p) {
    if (cur === null || typeof cur !== 'object') return undefined;
    cur = (cur as Record<PropertyKey, unknown>)[part];
  }
  return cur;
}

function describeValue(v: unknown): string | undefined {
  if (v === null || typeof v === 'number' || typeof v === 'boolean') return String(v);
  if (typeof v === 'string') {
    const s = JSON.stringify(v);
    return s.length > 60 ? `${s.slice(0, 57)}..."` : s;
  }
  return undefined;
}

function levenshtein(a: string, b: string): number {
  const row = Array.from({ length: b.length + 1 }, (_, i) => i);
  for (let i = 1; i <= a.length; i++) {
    let prev = row[0]!;
    row[0] = i;
    for (let j = 1; j <= b.length; j++) {
      const tmp = row[j]!;
      row[j] = Math.min(row[j]! + 1, row[j - 1]! + 1, prev + (a[i - 1] === b[j - 1] ? 0 : 1));
      prev = tmp;
    }
  }
  return row[b.length]!;
}

function suggestKey(key: string): string | undefined {
  const norm = (s: string) => s.toLowerCase().replace(/[-_]/g, '');
  const exact = KNOWN_KEYS.find((k) => norm(k) === norm(key));
  if (exact) return exact;
  let best: string | undefined;
  let bestDist = 3;
  for (const k of KNOWN_KEYS) {
    const d = levenshtein(norm(k), norm(key));
    if (d < bestDist) {
      best = k;
      bestDist = d;
    }
  }
  return best && key.length > 3 ? best : undefined;
}

/**
 * Validates one layer (a file, or the command line) with fileConfigSchema. Problems go to
 * `problems`; the returned values are those that are valid on their own, so that the rest
 * of the configuration can still be checked and every problem reported in one go.
 */
function validateLayer(
  raw: Values,
  source: string,
  label: (key: string, issuePath: string) => string,
  problems: Problem[],
  invalidKeys: Set<string>,
): Values {
  const result = fileConfigSchema.safeParse(raw);
  if (result.success) return result.data as Values;
  for (const issue of result.error.issues) {
    if (issue.code === 'unrecognized_keys') {
      for (const key of issue.keys) {
        const hint = suggestKey(key);
        problems.push({
          source,
          key,
          message: `unknown key "${key}"${hint ? ` (did you mean "${hint}"?)` : ''}`,
        });
      }
      continue;
    }
    const top = issue.path.length > 0 ? String(issue.path[0]) : '';
    if (top) invalidKeys.add(top);
    const got = describeValue(valueAt(raw, issue.path));
    problems.push({
      source,
      key: label(top || '(top level)', formatIssuePath(issue.path) || '(top level)'),
      message: got === undefined ? issue.message : `${issue.message} (got ${got})`,
    });
  }
  const salvaged: Values = {};
  for (const [key, v] of Object.entries(raw)) {
    if (!Object.hasOwn(SHAPE, key)) continue;
    const r = SHAPE[key]!.safeParse(v);
    if (r.success && r.data !== undefined) salvaged[key] = r.data;
  }
  return salvaged;
}

// ---------------------------------------------------------------------------------------
// extends

type ExtendsResult = { ok: true; file: string } | { ok: false; message: string };

/**
 * `./x`, `../x` and `/x` resolve against the directory of the file that contains `extends`.
 * Anything else is tried as a package path first (`@company/config/base.yaml`, resolved
 * from that file's location), then as a path relative to that file's directory.
 */
function resolveExtends(spec: string, fromFile: string): ExtendsResult {
  const dir = path.dirname(fromFile);
  const exists = (p: string) => fs.statSync(p, { throwIfNoEntry: false }) !== undefined;
  if (spec.startsWith('.') || spec.startsWith('/')) {
    const file = path.resolve(dir, spec);
    return exists(file) ? { ok: true, file } : { ok: false, message: `file not found: ${file}` };
  }
  try {
    const resolved = createRequire(fromFile).resolve(spec);
    if (path.isAbsolute(resolved)) return { ok: true, file: resolved };
  } catch {
    // Not a package path: try it as a relative path below.
  }
  const file = path.resolve(dir, spec);
  if (exists(file)) return { ok: true, file };
  return {
    ok: false,
    message: `cannot find "${spec}": it is neither a file in an installed package nor an existing file (${file})`,
  };
}

function realpathOr(p: string): string {
  try {
    return fs.realpathSync(p);
  } catch {
    return path.resolve(p);
  }
}

interface Layer {
  file: string;
  values: Values;
}

/** Reads `entry` and everything it extends. Returns the layers entry-first. */
function readChain(
  entry: string,
  problems: Problem[],
  invalidKeys: Set<string>,
): { layers: Layer[]; complete: boolean } {
  const layers: Layer[] = [];
  const seen: string[] = [];
  const chain: string[] = [];
  let file = entry;
  for (;;) {
    const real = realpathOr(file);
    if (seen.includes(real)) {
      problems.push({
        source: chain[chain.length - 1]!,
        key: 'extends',
        message: `circular extends: ${[...chain, file].join(' -> ')}`,
      });
      return { layers, complete: false };
    }
    seen.push(real);
    chain.push(file);
    const read = readConfigFile(file);
    if (!read.ok) {
      problems.push({ source: file, message: read.message });
      return { layers, complete: false };
    }
    const values = validateLayer(read.data, file, (_key, p) => p, problems, invalidKeys);
    const ext = values.extends;
    delete values.extends;
    layers.push({ file, values });
    if (invalidKeys.has('extends')) return { layers, complete: false };
    if (typeof ext !== 'string') return { layers, complete: true };
    const next = resolveExtends(ext, file);
    if (!next.ok) {
      problems.push({ source: file, key: 'extends', message: next.message });
      return { layers, complete: false };
    }
    file = next.file;
  }
}

/** Plain objects merge deeply; arrays and scalars of `over` replace those of `base`. */
export function deepMerge(base: unknown, over: unknown): unknown {
  if (!isPlainObject(base) || !isPlainObject(over)) return over;
  const out: Values = { ...base };
  for (const [k, v] of Object.entries(over)) {
    out[k] = Object.hasOwn(out, k) ? deepMerge(out[k], v) : v;
  }
  return out;
}

// ---------------------------------------------------------------------------------------
// Command line

function cliLayer(o: CliOverrides): Values {
  const raw: Values = {};
  for (const key of ['script', 'listenVar', 'tmpDir', 'socketFile', 'ipcFile', 'outputPrefix'] as const) {
    if (o[key] !== undefined) raw[key] = o[key];
  }
  if (o.workers !== undefined) {
    const w = o.workers;
    // '3' -> 3; anything that is not a decimal number stays a string so validation reports it.
    raw.workers = typeof w === 'string' && /^\s*[+-]?\d+(\.\d+)?\s*$/.test(w) ? Number(w) : w;
  }
  // commander gives [] for a repeatable option that was not used: treat it as absent.
  if (o.env !== undefined && o.env.length > 0) raw.env = o.env;
  if (o.devServer !== undefined) {
    const d = o.devServer;
    if (typeof d === 'string' && /^\s*\d+\s*$/.test(d)) raw.devServer = Number(d);
    else if (d === 'true') raw.devServer = true;
    else if (d === 'false') raw.devServer = false;
    else raw.devServer = d;
  }
  return raw;
}

// ---------------------------------------------------------------------------------------
// Gathering: files + command line, merged, not yet defaulted or resolved

interface Gathered {
  problems: Problem[];
  /** Loading stopped early (no file, unreadable file, broken extends): skip whole-config checks. */
  incomplete: boolean;
  /** Merged values from the files and the command line (no defaults, paths as written). */
  values: Values;
  origins: Record<string, string>;
  files: string[];
  entry?: string;
  baseDir: string;
  invalidKeys: Set<string>;
}

interface GatherOptions {
  configPath?: string;
  overrides?: CliOverrides;
  cwd?: string;
  requireConfigFile?: boolean;
  /** What to suggest when no config file is found. */
  noFileHint: string;
}

function gather(opts: GatherOptions): Gathered {
  const cwd = opts.cwd !== undefined ? path.resolve(opts.cwd) : logicalCwd();
  const overrides = opts.overrides ?? {};
  const problems: Problem[] = [];
  const invalidKeys = new Set<string>();
  let incomplete = false;

  let entry: string | undefined;
  if (opts.configPath !== undefined) {
    if (opts.configPath === '') {
      problems.push({
        source: COMMAND_LINE,
        key: '--config',
        message: 'the config file path must not be empty',
      });
      incomplete = true;
    } else {
      const given = path.resolve(cwd, opts.configPath);
      if (fs.statSync(given, { throwIfNoEntry: false })?.isDirectory()) {
        entry = findConfigFile(given);
        if (!entry) {
          problems.push({
            source: given,
            message: `is a directory and holds no config file (looked for ${LOOKED_FOR})`,
          });
          incomplete = true;
        }
      } else {
        entry = given;
      }
    }
  } else {
    entry = findConfigFile(cwd);
    const v1Usage =
      !opts.requireConfigFile && overrides.script !== undefined && overrides.tmpDir !== undefined;
    if (!entry && !v1Usage) {
      problems.push({
        source: '',
        message: `no config file found in ${cwd} (looked for ${LOOKED_FOR}); ${opts.noFileHint}`,
      });
      incomplete = true;
    }
  }

  const baseDir = entry ? path.dirname(entry) : cwd;
  const values: Values = {};
  const origins: Record<string, string> = {};
  const files: string[] = [];

  if (entry) {
    const { layers, complete } = readChain(entry, problems, invalidKeys);
    if (!complete) incomplete = true;
    // Base files are merged under the files that extend them.
    for (const layer of [...layers].reverse()) {
      for (const [k, v] of Object.entries(layer.values)) {
        values[k] = deepMerge(values[k], v);
        origins[k] = layer.file;
      }
    }
    files.push(...layers.map((l) => l.file));
  }

  const cliRaw = cliLayer(overrides);
  const cli = validateLayer(
    cliRaw,
    COMMAND_LINE,
    (key) => OPTION_NAMES[key as keyof CliOverrides] ?? `--${key}`,
    problems,
    invalidKeys,
  );
  if (cli.devServer === true && typeof values.devServer === 'number') {
    // A bare --dev-server turns the server on, on the file's port when it gives one.
    cli.devServer = values.devServer;
  }
  for (const [k, v] of Object.entries(cli)) {
    values[k] = v;
    origins[k] = COMMAND_LINE;
  }

  return { problems, incomplete, values, origins, files, entry, baseDir, invalidKeys };
}

/**
 * The env list for workers. The base set (DEFAULT_ENV: PATH, HOME, LANG, TZ, NODE_ENV, …) is
 * ALWAYS passed, also when the config gives its own `env`: the user's entries are added to it,
 * not substituted for it, because a worker without PATH or HOME breaks in surprising ways.
 * Entries are `NAME` (copied from the daemon's environment) or `NAME=value`. One entry per
 * name: the user's last entry for a name wins over earlier ones and over the base set.
 */
function effectiveEnv(user: string[] | undefined): string[] {
  const byName = new Map<string, string>();
  for (const entry of [...(user ?? []), ...DEFAULT_ENV]) {
    const name = entry.split('=', 1)[0]!;
    if (!byName.has(name)) byName.set(name, entry);
  }
  // Re-apply the user's entries so that the last one for a name wins (Map keeps first position).
  for (const entry of user ?? []) byName.set(entry.split('=', 1)[0]!, entry);
  return [...byName.values()];
}

const nameSocket = (tmpDir: string, socketFile: string) =>
  path.join(tmpDir, socketFile.replaceAll('{worker}', 'x'.repeat(WORKER_ID_LENGTH)));

/**
 * Loads the effective configuration. Relative paths, in the files and on the command line,
 * resolve against the entry config file's directory, or against the logical cwd (opts.cwd)
 * when there is no config file. Throws ConfigError listing every problem found.
 */
export function loadConfig(
  opts: { configPath?: string; overrides?: CliOverrides; cwd?: string; requireConfigFile?: boolean } = {},
): LoadedConfig {
  const g = gather({ ...opts, noFileHint: 'pass --config <file>, or --script <file> and --tmp-dir <dir>' });
  const { problems, values, baseDir } = g;
  const where = g.entry ?? COMMAND_LINE;

  if (!g.incomplete) {
    for (const key of ['script', 'tmpDir'] as const) {
      if (values[key] === undefined && !g.invalidKeys.has(key)) {
        const option = OPTION_NAMES[key];
        problems.push({
          source: where,
          key,
          message: `${key} is required: set "${key}" in ${g.entry ? 'the config file' : 'a config file'} or pass ${option}`,
        });
      }
    }
  }

  const paths: Partial<Record<(typeof PATH_KEYS)[number], string>> = {};
  for (const key of PATH_KEYS) {
    const v = values[key];
    if (typeof v === 'string' && !g.invalidKeys.has(key)) paths[key] = path.resolve(baseDir, v);
  }
  const { script, tmpDir } = paths;
  const socketFile = (values.socketFile as string | undefined) ?? DEFAULTS.socketFile;
  const ipcValue = (values.ipcFile as string | undefined) ?? DEFAULTS.ipcFile;
  const ipcFile = path.isAbsolute(ipcValue)
    ? path.normalize(ipcValue)
    : tmpDir !== undefined
      ? path.resolve(tmpDir, ipcValue)
      : undefined;

  if (tmpDir !== undefined && !g.invalidKeys.has('socketFile')) {
    const longest = nameSocket(tmpDir, socketFile);
    const bytes = Buffer.byteLength(longest);
    if (bytes > MAX_SOCKET_PATH_BYTES) {
      problems.push({
        source: g.origins.tmpDir ?? where,
        key: 'tmpDir',
        message:
          `worker socket paths would be ${bytes} bytes long with socketFile "${socketFile}" ` +
          `(such as ${longest}, with a ${WORKER_ID_LENGTH}-character worker id), over the ` +
          `${MAX_SOCKET_PATH_BYTES}-byte limit for UNIX socket paths: use a shorter tmpDir or socketFile`,
      });
    }
  }
  if (ipcFile !== undefined && !g.invalidKeys.has('ipcFile')) {
    const bytes = Buffer.byteLength(ipcFile);
    if (bytes > MAX_SOCKET_PATH_BYTES) {
      problems.push({
        source: g.origins.ipcFile ?? g.origins.tmpDir ?? where,
        key: 'ipcFile',
        message: `the IPC socket path ${ipcFile} is ${bytes} bytes long, over the ${MAX_SOCKET_PATH_BYTES}-byte limit for UNIX socket paths`,
      });
    }
  }

  if (problems.length > 0) throw new ConfigError(problems.map(formatProblem));
  if (script === undefined || tmpDir === undefined || ipcFile === undefined) {
    // Unreachable: a missing or invalid value has been reported above.
    throw new ConfigError(`${where}: the configuration is incomplete`);
  }

  const pick = <K extends keyof typeof DEFAULTS>(key: K): (typeof DEFAULTS)[K] =>
    (values[key] as (typeof DEFAULTS)[K] | undefined) ?? DEFAULTS[key];
  const devServer = pick('devServer');
  const config: Config = {
    script,
    args: [...pick('args')],
    nodeArgs: [...pick('nodeArgs')],
    cwd: paths.cwd ?? baseDir,
    name: pick('name'),
    tmpDir,
    socketFile,
    ipcFile,
    listenVar: pick('listenVar'),
    workers: pick('workers'),
    standby: pick('standby'),
    readiness: pick('readiness'),
    env: effectiveEnv(values.env as string[] | undefined),
    outputPrefix: pick('outputPrefix'),
    ...(paths.stdout !== undefined ? { stdout: paths.stdout } : {}),
    ...(paths.stderr !== undefined ? { stderr: paths.stderr } : {}),
    devServer: devServer === true ? DEV_SERVER_DEFAULT_PORT : devServer === false ? false : devServer,
    umask: pick('umask'),
    spawnTimeout: pick('spawnTimeout'),
    onlineTimeout: pick('onlineTimeout'),
    shutdownTimeout: pick('shutdownTimeout'),
    killTimeout: pick('killTimeout'),
    upstreamKeepaliveTimeout: pick('upstreamKeepaliveTimeout'),
    maxStartAttempts: pick('maxStartAttempts'),
  };

  const origins: Record<string, string> = {};
  for (const key of Object.keys(config)) origins[key] = g.origins[key] ?? 'default';
  return { config, files: g.files, baseDir, origins };
}

/**
 * Where a client command finds the daemon's control socket. `--ipc-file` wins (resolved
 * against the cwd); otherwise the config (--config or discovered) gives ipcFile, resolved
 * against tmpDir. Only problems that affect that path are fatal here: a config file edited
 * into an invalid state elsewhere must not stop `status` or `terminate` from reaching a
 * daemon that is still running with its old, valid configuration.
 */
export function resolveIpcPath(opts: { configPath?: string; ipcFile?: string; cwd?: string } = {}): string {
  if (opts.ipcFile !== undefined) {
    if (opts.ipcFile === '') {
      throw new ConfigError(`${COMMAND_LINE}: --ipc-file: the IPC file path must not be empty`);
    }
    const cwd = opts.cwd !== undefined ? path.resolve(opts.cwd) : logicalCwd();
    return path.resolve(cwd, opts.ipcFile);
  }
  const g = gather({
    configPath: opts.configPath,
    cwd: opts.cwd,
    requireConfigFile: true,
    noFileHint: 'pass --config <file> or --ipc-file <path>',
  });
  const relevant = new Set(['tmpDir', 'ipcFile', 'extends', '--config']);
  const fatal = g.problems.filter((p) => p.key === undefined || relevant.has(p.key));
  if (fatal.length > 0) throw new ConfigError(fatal.map(formatProblem));
  const ipc = (g.values.ipcFile as string | undefined) ?? DEFAULTS.ipcFile;
  if (path.isAbsolute(ipc)) return path.normalize(ipc);
  if (typeof g.values.tmpDir !== 'string') {
    throw new ConfigError(
      formatProblem({
        source: g.entry ?? COMMAND_LINE,
        key: 'tmpDir',
        message:
          'tmpDir is required to find the IPC file: set "tmpDir" in the config file, or pass --ipc-file <path>',
      }),
    );
  }
  return path.resolve(g.baseDir, g.values.tmpDir, ipc);
}
