/**
 * Reading one config file: JSON or YAML by extension, with parse errors given as line and
 * column, and the YAML octal-umask fix. Returns the raw top-level object, not yet validated.
 * The yaml package loads when a YAML file is parsed: a JSON config never needs it.
 */
import fs from 'node:fs';
import path from 'node:path';
import type { Document } from 'yaml';
import { isPlainObject, type Values } from './values';

export type ReadResult = { ok: true; data: Values } | { ok: false; message: string };
export type TextResult = { ok: true; text: string } | { ok: false; message: string };

type Yaml = typeof import('yaml');
// A lazy require (the bundler keeps it lazy): yaml costs ~30 ms and ~8 MB to load.
const loadYaml = (): Yaml => require('yaml');

const errorCode = (err: unknown): string | undefined =>
  err && typeof err === 'object' && 'code' in err ? String((err as { code: unknown }).code) : undefined;

const errorText = (err: unknown): string => (err instanceof Error ? err.message : String(err));

export function readConfigFile(file: string): ReadResult {
  const read = readConfigText(file);
  return read.ok ? parseConfigText(file, read.text) : read;
}

/** The text of a config file (BOM removed), or why it cannot be read as one. */
export function readConfigText(file: string): TextResult {
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
  return { ok: true, text };
}

/** Parses the text of `file` (JSON or YAML by its extension, as readConfigText read it). */
export function parseConfigText(file: string, text: string): ReadResult {
  if (text.trim() === '') return { ok: false, message: 'the file is empty; expected an object of settings' };
  let value: unknown;
  if (path.extname(file).toLowerCase() === '.json') {
    try {
      value = JSON.parse(text);
    } catch (err) {
      return { ok: false, message: `invalid JSON: ${describeJsonError(errorText(err), text)}` };
    }
  } else {
    const doc = loadYaml().parseDocument(text);
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
  const { isMap, isScalar } = loadYaml();
  if (!isMap(doc.contents)) return;
  const node = doc.contents.get('umask', true);
  if (!isScalar(node) || typeof node.value !== 'number' || !node.range) return;
  const src = text.slice(node.range[0], node.range[1]).trim();
  if (/^0[0-7]+$/.test(src)) value.umask = Number.parseInt(src, 8);
}
