/**
 * The workers' recent output, kept in the daemon so that `nodesockd logs` works without log
 * files: one ring per slot (and one for the standbys), each bounded in bytes, under a cap for
 * them all. A worker that floods its output pushes out its own slot's older lines, not the
 * others', and costs the daemon a fixed amount of memory. Every line is numbered in the order
 * the daemon received it, stdout and stderr alike: the order `logs` prints them in.
 */
import type { LogLine, LogsQuery, LogsReply } from '../ipc/protocol';

/** What each slot (and the standbys together) keeps at most. */
export const SLOT_HISTORY_BYTES = 256 * 1024;
/** What all of them keep at most: past it, the oldest line of any slot goes first. */
export const TOTAL_HISTORY_BYTES = 2 * 1024 * 1024;
/** What a kept line costs besides its text (the object and its fields), as counted against the caps. */
const LINE_OVERHEAD_BYTES = 64;
/** A reply holds at most this much (its JSON, estimated): half the control protocol's frame limit. */
const REPLY_BYTES = 512 * 1024;

interface Kept {
  line: LogLine;
  bytes: number;
}

/** One slot's lines, oldest first: an array read from `head`, compacted now and then. */
class Ring {
  private items: (Kept | undefined)[] = [];
  private head = 0;
  bytes = 0;
  /** The number of the newest line dropped to make room (0: none yet). */
  droppedSeq = 0;

  push(kept: Kept): void {
    this.items.push(kept);
    this.bytes += kept.bytes;
  }

  get oldest(): Kept | undefined {
    return this.items[this.head];
  }

  shift(): number {
    const kept = this.items[this.head];
    if (!kept) return 0;
    this.items[this.head] = undefined;
    this.head += 1;
    this.bytes -= kept.bytes;
    this.droppedSeq = kept.line.seq;
    if (this.head > 1024 && this.head * 2 > this.items.length) {
      this.items = this.items.slice(this.head);
      this.head = 0;
    }
    return kept.bytes;
  }

  /** The lines numbered after `after` and before `before`, oldest first. */
  between(after: number, before: number): LogLine[] {
    const start = this.firstAbove(after);
    const end = this.firstAbove(before - 1);
    const out: LogLine[] = [];
    for (let i = start; i < end; i += 1) {
      const kept = this.items[i];
      if (kept) out.push(kept.line);
    }
    return out;
  }

  /** The index of the first line numbered above `seq` (binary search: the numbers only grow). */
  private firstAbove(seq: number): number {
    let lo = this.head;
    let hi = this.items.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if ((this.items[mid]?.line.seq ?? 0) <= seq) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  }
}

export class LogHistory {
  /** By slot index; the standbys' lines under -1. */
  private readonly rings = new Map<number, Ring>();
  private seq = 0;
  private bytes = 0;

  constructor(
    private readonly slotBytes = SLOT_HISTORY_BYTES,
    private readonly totalBytes = TOTAL_HISTORY_BYTES,
  ) {}

  /** Keeps one line of a worker's output; `byteLength` is the text's size in UTF-8. */
  add(slot: number | null, id: string, stream: 'out' | 'err', text: string, byteLength: number): void {
    const key = slot ?? -1;
    let ring = this.rings.get(key);
    if (!ring) {
      ring = new Ring();
      this.rings.set(key, ring);
    }
    this.seq += 1;
    const bytes = byteLength + LINE_OVERHEAD_BYTES;
    ring.push({ line: { seq: this.seq, time: Date.now(), slot, id, stream, text }, bytes });
    this.bytes += bytes;
    while (ring.bytes > this.slotBytes) this.bytes -= ring.shift();
    while (this.bytes > this.totalBytes) this.bytes -= this.oldestRing().shift();
  }

  /**
   * With `after`: the lines numbered after it, oldest first, as many as fit in a reply (`more`
   * says there are others), and whether lines after it were dropped before anyone read them.
   * Without: the last `lines` lines (before `before`, when given), newest kept first when they
   * do not all fit. `slot` keeps one slot's lines, then counts.
   */
  read(query: LogsQuery): Omit<LogsReply, 'pid'> {
    const rings =
      query.slot === undefined
        ? [...this.rings.values()]
        : [this.rings.get(query.slot)].filter((r): r is Ring => r !== undefined);
    const after = query.after ?? 0;
    const before = query.before ?? Number.MAX_SAFE_INTEGER;
    const all = rings.flatMap((r) => r.between(after, before)).sort((a, b) => a.seq - b.seq);
    if (query.after !== undefined) {
      const lines = fitting(all, false);
      return {
        lines,
        last: this.seq,
        more: lines.length < all.length,
        dropped: rings.some((r) => r.droppedSeq > after),
      };
    }
    const wanted = all.slice(Math.max(0, all.length - (query.lines ?? 50)));
    const lines = fitting(wanted, true);
    return { lines, last: this.seq, more: lines.length < wanted.length, dropped: false };
  }

  private oldestRing(): Ring {
    let oldest: Ring | undefined;
    for (const ring of this.rings.values()) {
      const seq = ring.oldest?.line.seq;
      if (seq !== undefined && (!oldest || seq < (oldest.oldest?.line.seq ?? Infinity))) oldest = ring;
    }
    return oldest as Ring;
  }
}

/** The lines that fit in one reply: from the oldest on, or (`newest`) from the newest back. */
function fitting(lines: LogLine[], newest: boolean): LogLine[] {
  let budget = REPLY_BYTES;
  let n = 0;
  for (; n < lines.length; n += 1) {
    const line = lines[newest ? lines.length - 1 - n : n] as LogLine;
    // JSON writes a control character in up to six bytes, a quote or backslash in two; the
    // fields and their names take the rest.
    budget -= Buffer.byteLength(line.text) + 5 * escapedChars(line.text) + 120;
    if (budget < 0) break;
  }
  return newest ? lines.slice(lines.length - n) : lines.slice(0, n);
}

/** The characters JSON escapes: the C0 controls, the quote and the backslash. */
function escapedChars(text: string): number {
  let n = 0;
  for (let i = 0; i < text.length; i += 1) {
    const c = text.charCodeAt(i);
    if (c < 0x20 || c === 0x22 || c === 0x5c) n += 1;
  }
  return n;
}
