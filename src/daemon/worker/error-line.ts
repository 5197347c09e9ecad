/**
 * The line that says why a worker died, picked from its stderr as it streams: Node prints an
 * uncaught exception as the source line, a caret under it, a blank line, then the error's own
 * first line (`Error: boom`, `TypeError [ERR_X]: …`, or the thrown value itself), then the
 * stack, so the stack's tail and `Node.js v20…` are what a fixed-size tail keeps. The answer is
 * the latest line after a caret or that reads like an error (`SomeError…`, `name: …`,
 * `FATAL ERROR: …`; not indented, so not a stack frame or a `[cause]`). It is forgotten once
 * WINDOW_LINES newer lines have passed, so an old log line is not reported as the cause of a
 * later exit.
 */

/** How many later stderr lines an error line stays the answer for. */
export const WINDOW_LINES = 200;

const CARET = /^\s*\^+\s*$/;
const ERRORISH = /^(?:\w*Error\b|\w+(?: \[[\w.-]+\])?: \S|FATAL ERROR: )/;

export class ErrorLine {
  private count = 0;
  private afterCaret = false;
  private latest: { line: string; at: number } | null = null;

  /** Feeds one stderr line (without its newline). */
  push(line: string): void {
    this.count++;
    if (line.trim() === '') return;
    if (this.afterCaret) {
      this.afterCaret = false;
      this.latest = { line, at: this.count };
    } else if (CARET.test(line)) this.afterCaret = true;
    else if (ERRORISH.test(line)) this.latest = { line, at: this.count };
  }

  /** The error line of the latest stderr output, or null. */
  get line(): string | null {
    return this.latest !== null && this.count - this.latest.at < WINDOW_LINES ? this.latest.line : null;
  }
}
