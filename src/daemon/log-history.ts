/**
 * The workers' recent output, kept in the daemon so that `nodesockd logs` works without log
 * files: per slot (and one for the standbys) a ring of fixed 32 KiB chunks holding the lines'
 * bytes, at most SLOT_HISTORY_BYTES each and TOTAL_HISTORY_BYTES in all. When a ring is full,
 * its oldest chunk is emptied and written again, so a worker that floods its output pushes out
 * its own slot's older lines, not the others', and the daemon's memory for it is fixed: no
 * string or object is kept per line (a flood would fill the heap with lines waiting for a
 * collection). Every line is numbered in the order the daemon received it, stdout and stderr
 * alike: the order `logs` prints them in.
 */
import type { LogLine, LogsQuery, LogsReply } from '../ipc/protocol';

export const CHUNK_BYTES = 32 * 1024;
/** What each slot (and the standbys together) keeps at most. */
export const SLOT_HISTORY_BYTES = 256 * 1024;
/** What all of them keep at most: past it, the slots that hold the most give up their oldest chunks. */
export const TOTAL_HISTORY_BYTES = 2 * 1024 * 1024;
/** A reply holds at most this much (its JSON, estimated): half the control protocol's frame limit. */
const REPLY_BYTES = 512 * 1024;

/** Each line in a chunk: seq (f64), time (f64), the worker id's 8 hex digits (u32), stream (u8), length (u16), text. */
const HEADER_BYTES = 23;
const STREAMS = ['out', 'err'] as const;

/** Lines written one after another into a fixed buffer. */
class Chunk {
  readonly buf = Buffer.allocUnsafeSlow(CHUNK_BYTES);
  used = 0;
  firstSeq = 0;
  lastSeq = 0;

  fits(bytes: number): boolean {
    return this.used + HEADER_BYTES + bytes <= CHUNK_BYTES;
  }

  add(seq: number, time: number, id: string, stream: 'out' | 'err', text: Buffer): void {
    let at = this.used;
    if (at === 0) this.firstSeq = seq;
    this.lastSeq = seq;
    at = this.buf.writeDoubleLE(seq, at);
    at = this.buf.writeDoubleLE(time, at);
    at = this.buf.writeUInt32LE(Number.parseInt(id.slice(1), 16) >>> 0, at);
    at = this.buf.writeUInt8(stream === 'out' ? 0 : 1, at);
    at = this.buf.writeUInt16LE(text.length, at);
    this.used = at + text.copy(this.buf, at);
  }

  /** The lines numbered after `after` and before `before`, oldest first. */
  *between(after: number, before: number, slot: number | null): Generator<LogLine> {
    if (this.used === 0 || this.lastSeq <= after || this.firstSeq >= before) return;
    for (let at = 0; at < this.used; ) {
      const seq = this.buf.readDoubleLE(at);
      const length = this.buf.readUInt16LE(at + 21);
      const start = at + HEADER_BYTES;
      at = start + length;
      if (seq <= after || seq >= before) continue;
      yield {
        seq,
        time: this.buf.readDoubleLE(start - 15),
        slot,
        id: `w${this.buf
          .readUInt32LE(start - 7)
          .toString(16)
          .padStart(8, '0')}`,
        stream: STREAMS[this.buf.readUInt8(start - 3)] ?? 'out',
        text: this.buf.toString('utf8', start, start + length),
      };
    }
  }
}

/** One slot's chunks, oldest first. */
interface Ring {
  slot: number | null;
  chunks: Chunk[];
  /** The number of the newest line dropped to make room (0: none yet). */
  droppedSeq: number;
}

export class LogHistory {
  /** By slot index; the standbys' lines under -1. */
  private readonly rings = new Map<number, Ring>();
  private seq = 0;
  private chunks = 0;

  constructor(
    private readonly slotChunks = SLOT_HISTORY_BYTES / CHUNK_BYTES,
    private readonly totalChunks = TOTAL_HISTORY_BYTES / CHUNK_BYTES,
  ) {}

  /** Keeps one line of a worker's output (its UTF-8 bytes, at most MAX_LINE_BYTES and a marker). */
  add(slot: number | null, id: string, stream: 'out' | 'err', text: Buffer): void {
    const key = slot ?? -1;
    let ring = this.rings.get(key);
    if (!ring) {
      ring = { slot, chunks: [], droppedSeq: 0 };
      this.rings.set(key, ring);
    }
    const line =
      text.length > CHUNK_BYTES - HEADER_BYTES ? text.subarray(0, CHUNK_BYTES - HEADER_BYTES) : text;
    let chunk = ring.chunks.at(-1);
    if (!chunk?.fits(line.length)) {
      chunk = this.freeChunk(ring);
      ring.chunks.push(chunk);
    }
    this.seq += 1;
    chunk.add(this.seq, Date.now(), id, stream, line);
  }

  /**
   * With `after`: the lines numbered after it, oldest first, as many as fit in a reply (`more`
   * says there are others), and whether lines after it were dropped before anyone read them.
   * Without: the last `lines` lines (before `before`, when given), the newest kept when they
   * do not all fit. `slot` keeps one slot's lines, then counts.
   */
  read(query: LogsQuery): Omit<LogsReply, 'pid'> {
    const rings =
      query.slot === undefined
        ? [...this.rings.values()]
        : [this.rings.get(query.slot)].filter((r): r is Ring => r !== undefined);
    const after = query.after ?? 0;
    const before = query.before ?? Number.MAX_SAFE_INTEGER;
    // Without `after`, each ring is read from its newest chunk back, only as far as needed.
    const enough = query.after === undefined ? (query.lines ?? 50) : Infinity;
    const all = rings
      .flatMap((r) => {
        const pages: LogLine[][] = [];
        for (let i = r.chunks.length - 1, n = 0; i >= 0 && n < enough; i -= 1) {
          const page = [...(r.chunks[i] as Chunk).between(after, before, r.slot)];
          pages.unshift(page);
          n += page.length;
        }
        return pages.flat();
      })
      .sort((a, b) => a.seq - b.seq);
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

  /**
   * An empty chunk for `ring`: a new one while under the caps, else its own oldest one at the slot
   * cap, else (at the total cap) the oldest chunk of the slot that holds the most, emptied.
   */
  private freeChunk(ring: Ring): Chunk {
    if (ring.chunks.length < this.slotChunks && this.chunks < this.totalChunks) {
      this.chunks += 1;
      return new Chunk();
    }
    const from = ring.chunks.length >= this.slotChunks ? ring : this.largestRing();
    const chunk = from.chunks.shift() as Chunk;
    from.droppedSeq = chunk.lastSeq;
    chunk.used = 0;
    return chunk;
  }

  /** The ring with the most chunks (of those, the one with the oldest line): it gives one up. */
  private largestRing(): Ring {
    let largest: Ring | undefined;
    for (const ring of this.rings.values()) {
      const first = ring.chunks[0];
      if (!first) continue;
      const more = !largest || ring.chunks.length > largest.chunks.length;
      const older =
        largest?.chunks.length === ring.chunks.length && first.firstSeq < (largest.chunks[0]?.firstSeq ?? 0);
      if (more || older) largest = ring;
    }
    return largest as Ring;
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
