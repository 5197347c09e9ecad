import fs from 'node:fs';
import { z } from 'zod';

const workerRecord = z.object({
  id: z.string().regex(/^w[0-9a-f]{8}$/),
  pid: z.number().int().positive(),
  socketPath: z.string(),
  slot: z.number().int().min(0).nullable(),
  role: z.enum(['serving', 'standby', 'draining', 'starting']),
  suspended: z.boolean(),
  startedAt: z.number(),
  generation: z.number().int(),
  /** Process start time (from /proc), so a reused pid is never mistaken for the worker. */
  startTicks: z.string().nullable(),
});

const stateSchema = z.object({
  version: z.literal(1),
  daemonPid: z.number().int(),
  running: z.boolean(),
  suspended: z.boolean(),
  generation: z.number().int(),
  workers: z.array(workerRecord),
});

export type DaemonState = z.infer<typeof stateSchema>;
export type WorkerRecord = z.infer<typeof workerRecord>;

/**
 * What the next daemon needs to take over the workers if this one dies (SPEC §4.8), kept in
 * tmpDir next to the control socket and replaced atomically on every change.
 */
export class StateFile {
  private pending = false;

  constructor(readonly path: string) {}

  /** Coalesces bursts of changes (a restart swaps every slot) into one write. */
  schedule(snapshot: () => DaemonState): void {
    if (this.pending) return;
    this.pending = true;
    setImmediate(() => {
      this.pending = false;
      this.write(snapshot());
    });
  }

  write(state: DaemonState): void {
    const temp = `${this.path}.${process.pid}.tmp`;
    try {
      fs.writeFileSync(temp, `${JSON.stringify(state, null, 2)}\n`, { mode: 0o600 });
      fs.renameSync(temp, this.path);
    } catch {
      fs.rmSync(temp, { force: true });
    }
  }

  /** The state an earlier daemon left, or null (none, unreadable or not ours). */
  read(): { state: DaemonState | null; problem: string | null } {
    let text: string;
    try {
      text = fs.readFileSync(this.path, 'utf8');
    } catch {
      return { state: null, problem: null };
    }
    try {
      const parsed = stateSchema.safeParse(JSON.parse(text));
      if (parsed.success) return { state: parsed.data, problem: null };
      return { state: null, problem: `${this.path} is not a valid state file; ignoring it` };
    } catch {
      return { state: null, problem: `${this.path} is not valid JSON; ignoring it` };
    }
  }

  remove(): void {
    fs.rmSync(this.path, { force: true });
  }
}
