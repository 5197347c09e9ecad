import { StringDecoder } from 'node:string_decoder';

/** Longest frame either side accepts; a peer sending more is cut off, not buffered forever. */
export const MAX_FRAME_BYTES = 1024 * 1024;

export class FrameTooLargeError extends Error {
  constructor(limit: number) {
    super(`frame larger than ${limit} bytes`);
  }
}

/**
 * Splits a byte stream into newline-delimited frames. A StringDecoder keeps multi-byte
 * UTF-8 characters that straddle two chunks intact.
 */
export class LineFramer {
  private readonly decoder = new StringDecoder('utf8');
  private pending = '';

  constructor(private readonly maxBytes = MAX_FRAME_BYTES) {}

  /** Returns the complete frames in this chunk; throws FrameTooLargeError on an overlong frame. */
  push(chunk: Buffer): string[] {
    this.pending += this.decoder.write(chunk);
    const frames = this.pending.split('\n');
    this.pending = frames.pop() ?? '';
    // The limit is in UTF-8 bytes: a frame of multi-byte characters is longer than its length.
    const tooLong = (s: string) => s.length > this.maxBytes || Buffer.byteLength(s) > this.maxBytes;
    if (tooLong(this.pending) || frames.some(tooLong)) {
      this.pending = '';
      throw new FrameTooLargeError(this.maxBytes);
    }
    return frames.filter((f) => f.trim() !== '');
  }
}

export function encodeFrame(message: unknown): string {
  return `${JSON.stringify(message)}\n`;
}

/**
 * Peer input quoted in a one-line message: control characters (C0, DEL and the C1 range, which
 * some terminals also obey) escaped as `\uXXXX`.
 */
export function escapeControlChars(text: string): string {
  const hex = (c: string) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`;
  // biome-ignore lint/suspicious/noControlCharactersInRegex: the control characters are the point
  return text.replace(/[\u0000-\u001f\u007f-\u009f]/g, hex);
}
