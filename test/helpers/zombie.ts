import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import type { AppDir } from './app';
import { BIN, cli } from './daemon';
import { waitFor } from './wait';

/** Whether python3 is there to make a process a child subreaper (prctl), or why a test skips. */
export const NO_SUBREAPER =
  spawnSync('python3', ['-c', 'import ctypes'], { stdio: 'ignore' }).status === 0
    ? false
    : 'needs python3 (prctl PR_SET_CHILD_SUBREAPER) for a parent that adopts orphans and never reaps them';

/** Sets PR_SET_CHILD_SUBREAPER (36), which survives exec, then execs `sh -c <script> <args…>`. */
const SUBREAPER = `import ctypes, os, sys
if ctypes.CDLL(None).prctl(36, 1, 0, 0, 0) != 0: sys.exit('prctl failed')
os.execvp('sh', ['sh', '-c'] + sys.argv[1:])`;

export const isZombie = (pid: number): boolean =>
  /^\S+ \(.*\) Z /.test(fs.readFileSync(`/proc/${pid}/stat`, 'utf8'));

/** The parent pid of a process, from /proc. */
export const parentOf = (pid: number): number =>
  Number(fs.readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]?.split(' ')[1]);

/**
 * A daemon whose parent never reaps it: `sh` starts it in the background, then becomes `sleep`.
 * Once it exits it stays a zombie until the sleep is killed. With `subreaper`, the sleep also
 * adopts the daemon's orphans (its workers, once the daemon is gone) and never reaps them.
 * Resolves with the daemon's pid and the sleep (kill it to clean up).
 */
export async function daemonUnderNonReapingParent(
  a: AppDir,
  options: { bin?: string; env?: NodeJS.ProcessEnv; subreaper?: boolean } = {},
): Promise<{ pid: number; parent: { kill: () => void } }> {
  const log = path.join(a.dir, 'daemon.log');
  const script = `"$0" "$1" daemon -c "$2" >"$3" 2>&1 & exec sleep 600`;
  const args = [script, process.execPath, options.bin ?? BIN, a.configFile, log];
  const child = options.subreaper
    ? spawn('python3', ['-c', SUBREAPER, ...args], { stdio: 'ignore', env: options.env })
    : spawn('sh', ['-c', ...args], { stdio: 'ignore', env: options.env });
  const parent = { kill: () => void child.kill('SIGKILL') };
  try {
    const s = await waitFor('the daemon under sh', async () => {
      const r = await cli(['status', '--json', '--ipc-file', a.ipcFile]);
      const status =
        r.code === 0 ? (JSON.parse(r.stdout) as { pid: number; workers: { state: string }[] }) : null;
      return status?.workers.some((w) => w.state === 'online') ? status : null;
    });
    if (parentOf(s.pid) !== child.pid) throw new Error('the daemon is not a child of the sleep');
    return { pid: s.pid, parent };
  } catch (err) {
    parent.kill();
    throw err;
  }
}
