/**
 * The daemon's side of TLS on the `listen` front: the key and certificate files of each TLS
 * entry are read and checked here (at start, on `reload`, and by `check`), and their PEM text
 * goes to the workers over their IPC channels ({@link TlsDistributor}); the workers end TLS
 * (tls-receiver.ts). The daemon decrypts only what it relays to adopted workers, which have no
 * channel for the material (tcp-front.ts).
 *
 * Each problem is one line naming the listen entry and the file.
 */
import type { ChildProcess } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import type tls from 'node:tls';
import type { ListenEntry, ListenTls } from '../config/schema';
import type { FrontCertificate } from '../ipc/protocol';
import { MSG_TLS, type TlsMaterialMessage, type TlsPem } from '../ipc/worker-protocol';
import { errorMessage } from '../log';
import { formatAddress } from './address';
import { lazyTls } from './lazy-tls';

/** What `status` shows of an entry's certificate. */
export type CertSummary = FrontCertificate;

export interface TlsEntryMaterial {
  pem: TlsPem;
  cert: CertSummary;
}

export interface TlsReading {
  /** The material, or null when an error was found. */
  material: TlsEntryMaterial | null;
  errors: string[];
  warnings: string[];
}

/** How a listen entry is named in problem lines: `listen 0.0.0.0:8443`. */
export function entryLabel(entry: ListenEntry): string {
  return `listen ${formatAddress(entry)}`;
}

function readProblem(err: unknown): string {
  const code = (err as NodeJS.ErrnoException | null)?.code;
  if (code === 'ENOENT') return 'it does not exist';
  if (code === 'EACCES' || code === 'EPERM') return 'permission denied';
  if (code === 'EISDIR') return 'it is a directory';
  return errorMessage(err);
}

/** Why OpenSSL refused a PEM text, without its error-code prefix. */
function opensslReason(err: unknown): string {
  return errorMessage(err).replace(/^error:[0-9A-F]+:[^:]*:[^:]*:/i, '');
}

/** Reads and checks the files of one TLS entry: readable, PEM, the key matches the certificate. */
export function readTlsEntry(entry: ListenEntry & { tls: ListenTls }, now = Date.now()): TlsReading {
  const where = entryLabel(entry);
  const errors: string[] = [];
  const warnings: string[] = [];
  const texts: Partial<Record<keyof ListenTls, string>> = {};
  for (const name of ['key', 'cert', 'ca'] as const) {
    const file = entry.tls[name];
    if (file === undefined) continue;
    try {
      texts[name] = fs.readFileSync(file, 'utf8');
    } catch (err) {
      errors.push(`${where}: cannot read tls.${name} ${file}: ${readProblem(err)}`);
    }
  }
  const { key, cert, ca } = texts;
  if (key === undefined || cert === undefined || (entry.tls.ca !== undefined && ca === undefined))
    return { material: null, errors, warnings };

  let x509: crypto.X509Certificate;
  try {
    x509 = new crypto.X509Certificate(cert);
  } catch (err) {
    errors.push(`${where}: tls.cert ${entry.tls.cert} is not a PEM certificate (${opensslReason(err)})`);
    return { material: null, errors, warnings };
  }
  try {
    crypto.createPrivateKey(key);
  } catch (err) {
    errors.push(
      `${where}: tls.key ${entry.tls.key} is not a PEM private key without a passphrase (${opensslReason(err)})`,
    );
    return { material: null, errors, warnings };
  }
  if (ca !== undefined) {
    // Node's TLS context skips what is not a certificate in `ca` without a word: look ourselves.
    const problem = caProblem(ca);
    if (problem) {
      errors.push(`${where}: tls.ca ${entry.tls.ca} ${problem}`);
      return { material: null, errors, warnings };
    }
  }
  try {
    // What the workers will do with it: throws when the key is not the certificate's.
    lazyTls().createSecureContext({ key, cert, ...(ca !== undefined ? { ca } : {}) });
  } catch (err) {
    const reason = opensslReason(err);
    errors.push(
      /mismatch/i.test(reason)
        ? `${where}: tls.key ${entry.tls.key} does not match the certificate in tls.cert ${entry.tls.cert}`
        : `${where}: tls.key ${entry.tls.key} and tls.cert ${entry.tls.cert} cannot be used together (${reason})`,
    );
    return { material: null, errors, warnings };
  }
  const validTo = new Date(x509.validTo);
  const validFrom = new Date(x509.validFrom);
  if (validTo.getTime() < now)
    warnings.push(`${where}: the certificate in tls.cert ${entry.tls.cert} expired on ${isoDate(validTo)}`);
  else if (validFrom.getTime() > now)
    warnings.push(
      `${where}: the certificate in tls.cert ${entry.tls.cert} is not valid before ${isoDate(validFrom)}`,
    );
  return {
    material: {
      pem: { key, cert, ...(ca !== undefined ? { ca } : {}) },
      cert: {
        subject: x509.subject.replaceAll('\n', ', '),
        validTo: validTo.toISOString(),
        fingerprint256: x509.fingerprint256,
      },
    },
    errors,
    warnings,
  };
}

/**
 * A private key other users can read: by every user an error for `check` (the daemon logs it
 * as a warning and carries on), by its group a warning (a group such as Debian's ssl-cert may
 * be meant to). The fix keeps the owner's and the group's access as they are where it can.
 */
export function keyModeProblem(
  entry: ListenEntry & { tls: ListenTls },
): { level: 'error' | 'warning'; message: string } | null {
  const file = entry.tls.key;
  let mode: number;
  try {
    mode = fs.statSync(file).mode & 0o777;
  } catch {
    return null; // Reading it says what is wrong.
  }
  const shown = `mode ${mode.toString(8).padStart(4, '0')}`;
  const where = `${entryLabel(entry)}: tls.key ${file}`;
  if (mode & 0o004) {
    return { level: 'error', message: `${where} is readable by every user (${shown}): chmod o-rwx ${file}` };
  }
  if (mode & 0o040) {
    return {
      level: 'warning',
      message: `${where} is readable by its group (${shown}); unless that group is meant to read it: chmod 600 ${file}`,
    };
  }
  return null;
}

function caProblem(ca: string): string | null {
  const blocks = ca.match(/-----BEGIN CERTIFICATE-----[\s\S]*?-----END CERTIFICATE-----/g) ?? [];
  if (blocks.length === 0) return 'holds no PEM certificate';
  for (const [i, block] of blocks.entries()) {
    try {
      new crypto.X509Certificate(block);
    } catch (err) {
      return `has a certificate (number ${i + 1}) that cannot be read (${opensslReason(err)})`;
    }
  }
  return null;
}

function isoDate(d: Date): string {
  return Number.isNaN(d.getTime()) ? 'an unreadable date' : d.toISOString().replace('.000Z', 'Z');
}

/** The material of every entry (null for plain TCP entries), and the warnings (expiry) found. */
export interface TlsMaterialSet {
  entries: (TlsEntryMaterial | null)[];
  warnings: string[];
}

/**
 * Reads the TLS files of every `listen` entry. Throws one line per problem (the file and the
 * entry) when any entry's files cannot be used; nothing is half-applied.
 */
export function readTlsMaterial(listen: ListenEntry[]): TlsMaterialSet {
  const errors: string[] = [];
  const warnings: string[] = [];
  const entries = listen.map((entry) => {
    if (!entry.tls) return null;
    const reading = readTlsEntry({ ...entry, tls: entry.tls });
    errors.push(...reading.errors);
    warnings.push(...reading.warnings);
    const exposed = keyModeProblem({ ...entry, tls: entry.tls });
    if (exposed) warnings.push(exposed.message);
    return reading.material;
  });
  if (errors.length > 0) throw new Error(errors.join('\n'));
  return { entries, warnings };
}

export function hasTls(listen: ListenEntry[]): boolean {
  return listen.some((entry) => entry.tls !== undefined);
}

/**
 * Gives the PEM material to the workers over their IPC channels. A worker gets it before its
 * first connection on a TLS entry (the same channel carries the handoff after it, in order),
 * and again on every {@link update} once it has had it; a worker that never served TLS never
 * holds the key.
 */
export class TlsDistributor {
  private version = 1;
  /** The children that hold some version of the material, with the version they hold. */
  private readonly holders = new Map<ChildProcess, number>();
  private readonly watched = new WeakSet<ChildProcess>();
  private readonly contexts = new Map<number, { version: number; context: tls.SecureContext }>();

  constructor(
    private material: TlsMaterialSet,
    /** Workers print TLS handshake failures (one line each) when the daemon runs with `debug`. */
    private readonly debug: boolean,
  ) {}

  /** Whether listen entry `index` is a TLS entry. */
  isTls(index: number): boolean {
    return this.material.entries[index] != null;
  }

  /** The certificate of each entry, for `status` (null: plain TCP). */
  certificates(): (CertSummary | null)[] {
    return this.material.entries.map((e) => e?.cert ?? null);
  }

  /** Entry `index`'s context, for the connections the daemon relays itself (adopted workers). */
  secureContext(index: number): tls.SecureContext | undefined {
    const pem = this.material.entries[index]?.pem;
    if (!pem) return undefined;
    const cached = this.contexts.get(index);
    if (cached?.version === this.version) return cached.context;
    const context = lazyTls().createSecureContext(pem);
    this.contexts.set(index, { version: this.version, context });
    return context;
  }

  /** Before a TLS handoff to `child`: sends it the current material unless it has it. */
  prepare(child: ChildProcess): void {
    if (this.holders.get(child) === this.version) return;
    this.sendTo(child);
  }

  /** New material (a reload): pushed at once to every worker that holds the old one. */
  update(material: TlsMaterialSet): void {
    this.material = material;
    this.version++;
    for (const child of [...this.holders.keys()]) this.sendTo(child);
  }

  private sendTo(child: ChildProcess): void {
    if (!child.connected) {
      this.holders.delete(child);
      return;
    }
    if (!this.watched.has(child)) {
      this.watched.add(child);
      const forget = () => this.holders.delete(child);
      child.once('exit', forget);
      child.once('disconnect', forget);
    }
    const message: TlsMaterialMessage = {
      cmd: MSG_TLS,
      version: this.version,
      debug: this.debug,
      entries: this.material.entries.map((e) => e?.pem ?? null),
    };
    // A failed send shows as a refused handoff (the worker has no material), tried elsewhere.
    this.holders.set(child, this.version);
    try {
      child.send(message, (err) => {
        if (err) this.holders.delete(child);
      });
    } catch {
      this.holders.delete(child);
    }
  }
}
