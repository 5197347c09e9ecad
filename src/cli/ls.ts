import { listDaemons, type RegistryEntry } from '../daemon-registry';
import { request } from '../ipc/client';
import type { DaemonStatus } from '../ipc/protocol';
import { errorMessage } from '../log';
import { type ClientOptions, print, terminalText } from './common';
import { duration, table } from './format';

/** How long `ls` waits for each daemon's status. */
const STATUS_TIMEOUT_MS = 3_000;

export interface ListedDaemon extends RegistryEntry {
  /** Slots whose worker serves (online or suspended), of all slots; null when it did not answer. */
  serving: number | null;
  slots: number | null;
  running: boolean | null;
  /** Why its status could not be read, or null. */
  error: string | null;
}

function listed(entry: RegistryEntry, status: DaemonStatus | Error): ListedDaemon {
  if (status instanceof Error)
    return { ...entry, serving: null, slots: null, running: null, error: errorMessage(status) };
  const states = new Map(status.workers.map((w) => [w.id, w.state]));
  const serving = status.slots.filter((s) => {
    const state = s.workerId === null ? undefined : states.get(s.workerId);
    return state === 'online' || state === 'suspended';
  }).length;
  return { ...entry, serving, slots: status.slots.length, running: status.running, error: null };
}

function workersColumn(d: ListedDaemon): string {
  if (d.error !== null) return `not answering (${d.error})`;
  if (d.running === false) return 'stopped';
  return `${d.serving}/${d.slots} serving`;
}

function human(daemons: ListedDaemon[], now: number): string {
  if (daemons.length === 0) return 'no nodesockd daemon of this user is running';
  const rows = [
    ['NAME', 'PID', 'UPTIME', 'WORKERS', 'CONFIG'],
    ...daemons.map((d) => [
      terminalText(d.name),
      String(d.pid),
      duration(now - d.startedAt),
      workersColumn(d),
      d.configFiles[0] ?? `(no file; control socket ${d.ipcFile})`,
    ]),
  ];
  return table(rows);
}

/** `nodesockd ls`: every daemon of this user on this host, from the registry, with its workers. */
export async function runLs(opts: Pick<ClientOptions, 'json'>): Promise<void> {
  const entries = listDaemons();
  const daemons = await Promise.all(
    entries.map(async (entry) =>
      listed(
        entry,
        await request(entry.ipcFile, 'status', undefined, { timeoutMs: STATUS_TIMEOUT_MS }).catch(
          (err: unknown) => (err instanceof Error ? err : new Error(String(err))),
        ),
      ),
    ),
  );
  print(opts, daemons, () => human(daemons, Date.now()));
}
