import type { WorkerResult } from './protocol.js';

/**
 * The replies of a `send-req` one at a time: a worker's single reply as it is, a streamed one as
 * one reply per item (then its error, if one ended it).
 */
export function* replyItems(results: WorkerResult[]): Generator<WorkerResult> {
  for (const result of results) {
    if (result.items === undefined) {
      yield result;
      continue;
    }
    const { items, ...worker } = result;
    for (const item of items) yield { ...worker, ok: true, data: item };
    if (!result.ok) yield { ...worker, ok: false, error: result.error };
  }
}
