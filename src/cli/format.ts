import { escapeControlChars } from '../ipc/framing';
import type { DaemonStatus, SendMessageReply, WorkerRef, WorkerResult } from '../ipc/protocol';
import { slotFailureSummary } from '../ipc/slot-failure';

export function duration(ms: number): string {
  const s = Math.max(0, Math.floor(ms / 1000));
  if (s < 60) return `${s}s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m}m${String(s % 60).padStart(2, '0')}s`;
  const h = Math.floor(m / 60);
  if (h < 48) return `${h}h${String(m % 60).padStart(2, '0')}m`;
  return `${Math.floor(h / 24)}d${h % 24}h`;
}

function megabytes(bytes: number | null): string {
  return bytes === null ? '-' : `${(bytes / 1024 / 1024).toFixed(1)}M`;
}

function clock(ts: number): string {
  return new Date(ts).toTimeString().slice(0, 8);
}

/** Rows as aligned columns, two spaces apart. */
export function table(rows: string[][]): string {
  const widths = rows[0]!.map((_, col) => Math.max(...rows.map((r) => r[col]!.length)));
  return rows
    .map((r) =>
      r
        .map((cell, col) => cell.padEnd(widths[col]!))
        .join('  ')
        .trimEnd(),
    )
    .join('\n');
}

/** A starting worker that listened elsewhere: it will not come online on its own, and the fix. */
export function listenedElsewhere(addresses: string[]): string {
  return `listened on ${addresses.join(', ')}, not on its socket: call serve(server) from nodesockd (docs/worker-library.md#the-contract)`;
}

/** The human form of `nodesockd status`. */
export function formatStatus(s: DaemonStatus, now = Date.now(), opts: { verbose?: boolean } = {}): string {
  const lines = [
    `nodesockd ${s.version} daemon for "${s.name}", pid ${s.pid}, up ${duration(now - s.startedAt)}; ` +
      `workers ${s.running ? (s.suspended ? 'running (suspended)' : 'running') : 'stopped'}` +
      (s.devServer ? `; dev server ${s.devServer}` : ''),
  ];
  for (const problem of s.problems ?? []) lines.push(`problem: ${problem}`);
  if (s.front) {
    const handed = Object.entries(s.front.handedOut).map(([id, n]) => `${id} ${n}`);
    const relayed = Object.entries(s.front.relayed ?? {}).map(([id, n]) => `${id} ${n}`);
    const stalled = Object.entries(s.front.stalled ?? {}).map(([id, t]) => `${id} for ${duration(now - t)}`);
    if (s.front.totals) handed.unshift(`${s.front.totals.handedOut} in all`);
    const tls = s.front.tls;
    const addresses = s.front.addresses.map((address, i) => {
      const cert = tls?.[i];
      return cert ? `${address} (TLS: ${cert.subject}, until ${cert.validTo.slice(0, 10)})` : address;
    });
    lines.push(
      `listen ${addresses.join(', ')}; connections handed out: ${handed.length > 0 ? handed.join(', ') : 'none yet'}` +
        (relayed.length > 0 ? `; relayed to adopted workers: ${relayed.join(', ')}` : '') +
        (s.front.waiting ? `; ${s.front.waiting} waiting for a worker` : '') +
        (stalled.length > 0 ? `; stalled (being replaced): ${stalled.join(', ')}` : ''),
    );
  }
  const moves = s.handovers;
  if (moves && moves.moved + moves.failed > 0) {
    lines.push(
      `connections moved to new workers: ${moves.moved}${moves.failed > 0 ? ` (${moves.failed} could not move and closed the old way)` : ''}`,
    );
  }
  const rows = [['SLOT', 'ID', 'PID', 'STATE', 'SINCE', 'UPTIME', 'RESTARTS', 'RSS', 'CPU', 'INFLIGHT']];
  for (const w of s.workers) {
    rows.push([
      w.slot === null ? w.role : String(w.slot),
      w.id,
      w.pid === null ? '-' : String(w.pid),
      w.state,
      clock(w.since),
      duration(now - w.startedAt),
      String(w.restarts),
      megabytes(w.rssBytes),
      w.cpuSeconds === null ? '-' : `${w.cpuSeconds.toFixed(2)}s`,
      w.inflight === null ? '-' : String(w.inflight),
    ]);
  }
  if (s.workers.length > 0) lines.push(table(rows));
  else lines.push('no workers');
  for (const w of s.workers) {
    if (w.state === 'starting' && w.listenedElsewhere)
      lines.push(`${w.id} (starting): ${listenedElsewhere(w.listenedElsewhere)}`);
  }
  for (const slot of s.slots) {
    const failure = slot.lastFailure ?? null;
    const summary = slotFailureSummary(slot);
    const last = summary === null ? '' : `: ${summary}`;
    if (slot.workerId === null || slot.nextRetryAt !== null) {
      const retry = slot.nextRetryAt === null ? '' : `, next try in ${duration(slot.nextRetryAt - now)}`;
      // A worker that reported itself broken serves until its replacement is online.
      const who =
        slot.workerId === null
          ? 'no worker online'
          : `${slot.workerId} serves until its replacement is online`;
      lines.push(`slot ${slot.index}: ${who} (${slot.restarts} restarts${retry})${last}`);
    } else if (failure) {
      lines.push(`slot ${slot.index}: last failure ${duration(now - failure.at)} ago${last}`);
    }
    if (opts.verbose && failure) {
      for (const line of failure.stderr) lines.push(`  | ${escapeControlChars(line)}`);
    }
  }
  return lines.join('\n');
}

/** `slot 0  w5a0e22b2  4242`, with the labels padded to one width. */
function workerColumns(workers: WorkerRef[]): string[] {
  const labels = workers.map((w) => (w.slot !== null ? `slot ${w.slot}` : w.role));
  const width = Math.max(0, ...labels.map((l) => l.length));
  return workers.map((w, i) => `${labels[i]!.padEnd(width)}  ${w.id}  ${w.pid ?? '-'}`);
}

/** A worker's error text on the line of its worker: newlines shown as `\n`. */
function escapeNewlines(text: string): string {
  return text.replace(/\r?\n/g, '\\n');
}

/** The replies of `send-req`: one line per worker (per item of a streamed reply). */
export function resultLines(results: WorkerResult[]): string {
  const heads = workerColumns(results);
  return results
    .flatMap((r, i) => {
      // A streamed reply: one line per item, then the error that ended it, if one did.
      const items = (r.items ?? []).map((item) => `${heads[i]}  ok ${JSON.stringify(item)}`);
      if (!r.ok) return [...items, `${heads[i]}  error: ${escapeNewlines(r.error)}`];
      if (r.items !== undefined) return items.length > 0 ? items : [`${heads[i]}  ok (empty stream)`];
      return [r.data === undefined ? `${heads[i]}  ok` : `${heads[i]}  ok ${JSON.stringify(r.data)}`];
    })
    .join('\n');
}

/** What `send-msg` says: the workers reached, and those not reached with why. */
export function sentLines(reply: SendMessageReply): string {
  const failed = workerColumns(reply.failed);
  return [
    `sent to ${reply.sent.length} worker(s)${reply.sent.length > 0 ? ':' : ''}`,
    ...workerColumns(reply.sent).map((line) => `  ${line}`),
    ...(reply.failed.length > 0 ? [`not sent to ${reply.failed.length} worker(s):`] : []),
    ...reply.failed.map((f, i) => `  ${failed[i]}  error: ${escapeNewlines(f.error)}`),
  ].join('\n');
}
