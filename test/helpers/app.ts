import fs from 'node:fs';
import path from 'node:path';
import { after } from 'node:test';
import { stringify } from 'yaml';
import { type Daemon, FIXTURES, isAlive, killAll, makeTempDir } from './daemon';

export interface AppDir {
  dir: string;
  tmpDir: string;
  ipcFile: string;
  configFile: string;
  published: (slot: number) => string;
}

/** A temp app directory with a config for one of the fixture apps. */
export function makeApp(config: Record<string, unknown>, fixture = 'plain.js'): AppDir {
  const dir = makeTempDir('nsd-app-');
  const tmpDir = path.join(dir, 'run');
  fs.mkdirSync(tmpDir);
  const configFile = path.join(dir, 'nodesockd.yaml');
  fs.writeFileSync(configFile, stringify({ script: path.join(FIXTURES, fixture), tmpDir: 'run', ...config }));
  return {
    dir,
    tmpDir,
    ipcFile: path.join(tmpDir, 'nodesockd.ipc'),
    configFile,
    published: (slot) => path.join(tmpDir, `app.${slot}.sock`),
  };
}

/** Stops the daemon and makes sure no process of the test survives it. */
export async function teardown(daemon: Daemon | undefined, app: AppDir): Promise<void> {
  const pids = new Set<number>();
  if (daemon) {
    const s = await daemon.status().catch(() => undefined);
    for (const w of s?.workers ?? []) if (w.pid) pids.add(w.pid);
    await daemon.stop();
  }
  killAll([...pids].filter(isAlive));
  fs.rmSync(app.dir, { recursive: true, force: true, maxRetries: 5 });
}

/** A list of cleanups that all run after the file's tests, in reverse, whatever one of them throws. */
export function cleanupsAfterAll(): (() => Promise<void> | void)[] {
  const cleanups: (() => Promise<void> | void)[] = [];
  after(async () => {
    for (const c of cleanups.reverse())
      await Promise.resolve()
        .then(c)
        .catch(() => undefined);
  });
  return cleanups;
}
