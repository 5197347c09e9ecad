import { escapeControlChars } from './framing';
import type { SlotStatus } from './protocol';

/** A multi-line failure report (summary, then stderr lines) folded into one line. */
function foldLines(text: string, max = 240): string {
  const folded = text.replace(/:?\s*\n\s*/g, ' | ');
  return folded.length > max ? `${folded.slice(0, max - 1)}…` : folded;
}

/**
 * A slot's last failure in one line, as `status` and `health` say it: how the worker ended and
 * the line that says why (`exited with code 1: Error: boom`). Without that line, the whole
 * report folded. Escaped for a terminal: it quotes the app's output. Null: no failure yet.
 */
export function slotFailureSummary(slot: Pick<SlotStatus, 'lastExit' | 'lastFailure'>): string | null {
  if (slot.lastExit === null) return null;
  const error = slot.lastFailure?.error ?? null;
  const exit = error === null ? foldLines(slot.lastExit) : slot.lastExit.split('\n')[0]!;
  const text = exit
    .replace(/; its last stderr lines:$/, '')
    .replace(/^worker (\S+) for slot \d+ /, 'worker $1 ');
  return escapeControlChars(error === null ? text : `${text}: ${error}`);
}
