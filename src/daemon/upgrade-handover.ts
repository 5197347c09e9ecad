/**
 * The daemon-to-daemon handover of `restart --upgrade` (docs/lifecycle.md#daemon-handover-restart---upgrade),
 * both sides in one place, as tableflip keeps its parent, child and fds together:
 *
 * - the predecessor checks that the installed nodesockd can load its config
 *   ({@link checkSuccessorConfig}), lets go of the workers and, unless a supervisor restarts it,
 *   starts its successor with the listening sockets and the instance lock
 *   ({@link startSuccessor}); then it exits;
 * - the successor holds those sockets from its first moment (fronts/tcp-front.ts reads
 *   `HANDOVER_FDS_ENV`), waits for the predecessor to exit ({@link waitForPredecessor}), then
 *   takes the locks and adopts the workers (pool/adoption.ts).
 */
import { spawn, spawnSync } from 'node:child_process';
import { HANDOVER_FDS_ENV } from '../fronts/inherited-sockets';
import { errorMessage, type Logger } from '../log';
import { successorStdio } from '../stdio';
import { VERSION } from '../version';
import { LOCK_FD_ENV } from './instance-lock';
import { lazy } from './lazy';
import { waitForExit } from './proc';

/**
 * Set by a daemon for the successor it starts on `restart --upgrade`: the successor holds the
 * listening sockets from its first moment, and waits for this pid to exit before it takes the
 * locks and the workers.
 */
const PREDECESSOR_ENV = 'NODESOCKD_PREDECESSOR_PID';
/** How long a successor waits for its predecessor to let go. */
const PREDECESSOR_WAIT_MS = 60_000;
/** The first fd a child gets beyond its stdio. */
const FIRST_PASSED_FD = 3;

/**
 * Whether a supervisor starts this daemon again when it exits (the unit of `nodesockd systemd`
 * says so with NODESOCKD_SUPERVISED=1). A handover then just exits; without one, the daemon
 * starts its successor itself. Declared rather than guessed: a wrong guess either leaves no
 * daemon or starts two.
 */
export function underSupervisor(): boolean {
  return process.env.NODESOCKD_SUPERVISED === '1';
}

/** Whether `version` (the CLI's) is newer than this daemon's: only then is there a handover. */
export function isNewerVersion(version: string): boolean {
  return lazy.semverValid()(version) !== null && lazy.semverGt()(version, VERSION);
}

/**
 * The predecessor's pre-check: the installed nodesockd, run with this daemon's command line
 * and `--check-config`, must load the config, or the workers stay with this daemon (throws).
 */
export function checkSuccessorConfig(): void {
  const check = spawnSync(
    process.execPath,
    [...process.execArgv, ...process.argv.slice(1), '--check-config'],
    {
      cwd: process.cwd(),
      env: process.env,
      encoding: 'utf8',
      timeout: 30_000,
    },
  );
  if (check.status !== 0) {
    const why = (check.stderr || check.stdout || check.error?.message || 'no output').trim().split('\n')[0];
    throw new Error(
      `the installed nodesockd cannot start with this daemon's config, so the workers stay with this daemon: ${why}`,
    );
  }
}

/**
 * The predecessor makes way: under a supervisor it only says so (the supervisor starts the new
 * version, the socket unit keeps the ports open); otherwise it starts the successor with the
 * same command line, the listening sockets (fds 3, 4, …: while this daemon closes and until the
 * successor accepts, connections wait in the kernel's accept queue) and then the instance
 * lock's socket, so the successor holds the lock from its first moment. The caller then closes
 * (detaching the workers) and exits.
 */
export function startSuccessor(
  listeningFds: number[],
  passLock: (childFd: number) => { fd: number; env: string } | null,
  log: Logger,
): void {
  if (underSupervisor()) {
    log.info('exiting; the supervisor starts the new daemon (NODESOCKD_SUPERVISED=1)');
    return;
  }
  const fds = listeningFds;
  const lock = passLock(fds.length + FIRST_PASSED_FD);
  const next = spawn(process.execPath, [...process.execArgv, ...process.argv.slice(1)], {
    detached: true,
    // Not a dead pipe: a successor inherits only the streams that still work.
    stdio: [...successorStdio(), ...fds, ...(lock ? [lock.fd] : [])],
    env: {
      ...process.env,
      [PREDECESSOR_ENV]: String(process.pid),
      ...(fds.length > 0 ? { [HANDOVER_FDS_ENV]: fds.map((_, i) => i + FIRST_PASSED_FD).join(',') } : {}),
      ...(lock ? { [LOCK_FD_ENV]: lock.env } : {}),
    },
  });
  next.on('error', (err) => log.error(`starting the new daemon failed: ${errorMessage(err)}`));
  next.unref();
  log.info(
    `started the new daemon (pid ${next.pid})${fds.length > 0 ? ` with ${fds.length} listening socket(s)` : ''}; exiting`,
  );
}

/**
 * The successor: a daemon started by its predecessor's handover waits for it to exit (it has
 * let go of the locks, the control socket and the workers then). A zombie counts as gone.
 */
export async function waitForPredecessor(log: Logger): Promise<void> {
  const pid = Number(process.env[PREDECESSOR_ENV]);
  delete process.env[PREDECESSOR_ENV];
  if (!Number.isInteger(pid) || pid <= 0 || pid === process.pid) return;
  if (!(await waitForExit(pid, PREDECESSOR_WAIT_MS, 20))) {
    log.warn(
      `the previous daemon (pid ${pid}) has not exited after ${PREDECESSOR_WAIT_MS} ms; starting anyway`,
    );
  }
}
