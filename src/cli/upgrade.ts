// The two functions alone: the whole semver package costs the daemon ~6 MB of memory.
import semverGt from 'semver/functions/gt';
import semverValid from 'semver/functions/valid';
import { waitForExit } from '../daemon/proc';
import { request } from '../ipc/client';
import { VERSION } from '../version';

const NEW_DAEMON_DEADLINE_MS = 60_000;

async function poll<T>(what: string, deadlineMs: number, probe: () => Promise<T | undefined>): Promise<T> {
  const deadline = Date.now() + deadlineMs;
  for (;;) {
    const value = await probe().catch(() => undefined);
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`${what} within ${Math.round(deadlineMs / 1000)} s`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/**
 * The client side of `restart --upgrade` (docs/lifecycle.md#daemon-handover-restart---upgrade): when this CLI (the nodesockd installed
 * now) is newer than the running daemon, the daemon hands its workers over and a daemon of
 * this version adopts them. Resolves when a daemon of this version answers; returns a line
 * to print. The caller then restarts the workers as usual. Returns whether a new daemon took over
 * (`false`: nothing to upgrade, or the daemon declined).
 */
export async function upgradeDaemon(ipcPath: string, log: (line: string) => void): Promise<boolean> {
  const before = await request(ipcPath, 'status', undefined, { timeoutMs: 10_000 });
  if (!semverValid(before.version) || !semverGt(VERSION, before.version)) {
    log(`daemon ${before.pid} runs nodesockd ${before.version}; this is ${VERSION}: no upgrade needed`);
    return false;
  }
  const reply = await request(ipcPath, 'handover', { version: VERSION });
  if (!reply.handover) {
    log(`daemon ${reply.pid} declined the upgrade`);
    return false;
  }
  log(`daemon ${reply.pid} (nodesockd ${before.version}) is handing its workers over to ${VERSION}`);
  if (!(await waitForExit(reply.pid, NEW_DAEMON_DEADLINE_MS))) {
    throw new Error(
      `the old daemon (pid ${reply.pid}) did not exit within ${NEW_DAEMON_DEADLINE_MS / 1000} s`,
    );
  }
  const after = await poll(
    'no daemon of the new version answered (under systemd, the unit needs Restart=always: see `nodesockd systemd`)',
    NEW_DAEMON_DEADLINE_MS,
    async () => {
      const s = await request(ipcPath, 'status', undefined, { timeoutMs: 5_000 });
      return s.version === VERSION ? s : undefined;
    },
  );
  const adopted = after.workers.filter((w) => w.role === 'serving').length;
  log(`daemon ${after.pid} runs nodesockd ${after.version} and serves with ${adopted} adopted worker(s)`);
  return true;
}
