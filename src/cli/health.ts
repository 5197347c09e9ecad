/**
 * `nodesockd health`: asks the daemon whether every slot serves (daemon/health.ts) and says so
 * in one line and in its exit code: 0 healthy, 1 not (with the reason), 2 when no daemon
 * answers (or the control socket cannot be found), so a probe can tell the two apart.
 */
import { request } from '../ipc/client';
import type { HealthReport } from '../ipc/protocol';
import { type ClientOptions, exitAfterOutput, print, reportError } from './common';

export const HEALTH_NO_DAEMON = 2;

function human(report: HealthReport): string {
  if (!report.healthy) return `unhealthy: ${report.reason ?? 'unknown'}`;
  const suspended = report.slots.filter((s) => s.state === 'suspended').length;
  return (
    `healthy: ${report.slots.length} of ${report.slots.length} slot(s) accept connections` +
    (suspended > 0 ? ` (${suspended} suspended: holding requests until \`nodesockd resume\`)` : '')
  );
}

/** Runs `health` against the control socket `target()` finds; exits with the code above. */
export async function runHealth(target: () => string, opts: ClientOptions): Promise<void> {
  let report: HealthReport;
  try {
    report = await request(target(), 'health', undefined, { timeoutMs: 10_000 });
  } catch (err) {
    reportError(err, opts.debug === true);
    exitAfterOutput(HEALTH_NO_DAEMON);
    return;
  }
  print(opts, report, () => human(report));
  exitAfterOutput(report.healthy ? 0 : 1);
}
