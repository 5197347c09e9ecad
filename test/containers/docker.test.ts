/**
 * The container recipes of examples/containers, built and run for real: the Dockerfile's image
 * (non-root, tini as PID 1, the healthcheck, `docker stop` draining an in-flight request), and
 * compose.yaml's nginx sidecar (the socket directory on a shared volume, its owner set by the
 * init step, `depends_on` waiting for healthy) answering through a real nginx.
 *
 * No image registry is needed: test/containers/base-image.sh builds the base image locally
 * (debootstrap + Node from the npm registry, `docker import`) and caches it by tag.
 * `npm run test:containers` (not part of `npm test`); needs Docker, root, and dist/ built.
 */

import assert from 'node:assert/strict';
import { execFile, execFileSync } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { makeTempDir, ROOT } from '../helpers/daemon';
import { httpRequest } from '../helpers/http';
import { waitFor } from '../helpers/wait';

const BASE = 'nodesockd-test-base:bookworm-node20';
const RECIPE = path.join(ROOT, 'examples/containers');
const APP_UID = 10001;
const NGINX_GID = 33; // www-data, the user of Debian's nginx in the base image
const SOCKETS = '/run/myapp';
const tag = `nodesockd-test-app:${process.pid}`;
const names: string[] = [];

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

function run(
  cmd: string,
  args: string[],
  opts: { cwd?: string; env?: NodeJS.ProcessEnv } = {},
): Promise<Run> {
  return new Promise((resolve) => {
    execFile(cmd, args, { ...opts, maxBuffer: 64 * 1024 * 1024 }, (err, stdout, stderr) => {
      resolve({ code: err ? (typeof err.code === 'number' ? err.code : 1) : 0, stdout, stderr });
    });
  });
}

async function must(cmd: string, args: string[], opts: { cwd?: string; env?: NodeJS.ProcessEnv } = {}) {
  const r = await run(cmd, args, opts);
  if (r.code !== 0) throw new Error(`${cmd} ${args.join(' ')} exited ${r.code}:\n${r.stderr || r.stdout}`);
  return r.stdout.trim();
}

/** Why these tests cannot run here, or null. */
function skipReason(): string | null {
  if (process.getuid?.() !== 0) return 'needs root (Docker, and a socket directory owned by another uid)';
  try {
    execFileSync('docker', ['info'], { stdio: 'ignore' });
  } catch {
    return 'Docker is not available (`docker info` failed): apt-get install docker.io debootstrap, start dockerd';
  }
  if (!fs.existsSync(path.join(ROOT, 'dist/cli/bin.js'))) return 'dist/ is not built (npm run build)';
  return null;
}

function compose(): string[] | null {
  for (const c of [['docker', 'compose'], ['docker-compose']]) {
    try {
      execFileSync(c[0] as string, [...c.slice(1), 'version'], { stdio: 'ignore' });
      return c;
    } catch {}
  }
  return null;
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = net.createServer().listen(0, '127.0.0.1', () => {
      const { port } = s.address() as net.AddressInfo;
      s.close(() => resolve(port));
    });
    s.on('error', reject);
  });
}

/**
 * Whether the app has begun a /slow request (it logs it): read with `nodesockd logs` from the
 * daemon; `exec` runs a command in the app container.
 */
async function slowStarted(exec: (...cmd: string[]) => Promise<string>): Promise<boolean> {
  return (await exec('nodesockd', 'logs', '-n', '100', '-c', '/app/nodesockd.yaml')).includes('slow request');
}

/** The recipe as a build context, with this checkout's nodesockd as a package tarball. */
async function context(): Promise<string> {
  const dir = makeTempDir('nsd-containers-');
  fs.cpSync(RECIPE, dir, { recursive: true });
  await must('npm', ['pack', '--ignore-scripts', '--silent', '--pack-destination', dir], { cwd: ROOT });
  const tarball = fs.readdirSync(dir).find((f) => f.endsWith('.tgz'));
  const pkgFile = path.join(dir, 'package.json');
  const pkg = JSON.parse(fs.readFileSync(pkgFile, 'utf8')) as { dependencies: Record<string, string> };
  pkg.dependencies.nodesockd = `file:./${tarball}`;
  fs.writeFileSync(pkgFile, JSON.stringify(pkg, null, 2));
  await must('npm', ['install', '--package-lock-only', '--ignore-scripts', '--no-audit', '--no-fund'], {
    cwd: dir,
  });
  return dir;
}

const reason = skipReason();
if (reason) console.log(`# container tests skipped: ${reason}`);

describe('container recipes (examples/containers)', { skip: reason ?? false }, () => {
  let ctx = '';
  const project = `nsdtest${process.pid}`;
  let composeCmd: string[] | null = null;
  let composeEnv: NodeJS.ProcessEnv = {};

  before(async () => {
    let t = Date.now();
    console.log(`# ${await must(path.join(__dirname, 'base-image.sh'), [BASE])} in ${Date.now() - t} ms`);
    ctx = await context();
    t = Date.now();
    const args = ['--build-arg', `BASE_IMAGE=${BASE}`, '--build-arg', `NGINX_GID=${NGINX_GID}`];
    await must('docker', ['build', '-q', '--force-rm', ...args, '-t', tag, ctx]);
    console.log(`# app image ${tag} built in ${Date.now() - t} ms`);
    composeCmd = compose();
    composeEnv = {
      ...process.env,
      BASE_IMAGE: BASE,
      INIT_IMAGE: BASE,
      NGINX_IMAGE: BASE,
      NGINX_GID: String(NGINX_GID),
      HTTP_PORT: `127.0.0.1:${await freePort()}`,
    };
  });

  after(async () => {
    for (const n of names) await run('docker', ['rm', '-f', '-v', n]);
    if (composeCmd && ctx) {
      await run(
        composeCmd[0] as string,
        [...composeCmd.slice(1), '-p', project, 'down', '-v', '--rmi', 'local'],
        {
          cwd: ctx,
          env: composeEnv,
        },
      );
    }
    await run('docker', ['rmi', '-f', tag]);
    if (ctx) fs.rmSync(ctx, { recursive: true, force: true });
  });

  test('the image runs as app under tini, turns healthy, and docker stop drains an in-flight request', async () => {
    const sockets = makeTempDir('nsd-sockets-');
    fs.chownSync(sockets, APP_UID, NGINX_GID);
    fs.chmodSync(sockets, 0o2750);
    const name = `nsdtest${process.pid}-image`;
    names.push(name);
    // The stop timeout the recipe asks for (Dockerfile: `docker run --stop-timeout 30`).
    await must('docker', [
      'run',
      '-d',
      '--name',
      name,
      '--stop-timeout',
      '30',
      '-v',
      `${sockets}:${SOCKETS}`,
      tag,
    ]);
    await waitFor(
      'the healthcheck (nodesockd health) to report healthy',
      async () => (await must('docker', ['inspect', '-f', '{{.State.Health.Status}}', name])) === 'healthy',
      { timeoutMs: 90_000, intervalMs: 500 },
    );

    const procs = await must('docker', [
      'exec',
      name,
      'sh',
      '-c',
      'cat /proc/1/comm; grep -h "^Uid:" /proc/[0-9]*/status; cat /proc/[0-9]*/comm',
    ]);
    const [pid1, ...rest] = procs.split('\n');
    assert.equal(pid1, 'tini', 'PID 1 is tini');
    const uids = rest.filter((l) => l.startsWith('Uid:')).map((l) => l.split(/\s+/)[1]);
    assert.deepEqual([...new Set(uids)], [String(APP_UID)], 'every process runs as the app user');
    const comms = rest.filter((l) => !l.startsWith('Uid:'));
    assert.equal(
      comms.filter((c) => c.startsWith('myapp worker')).length,
      2,
      `2 workers: ${comms.join(', ')}`,
    );
    assert.ok(comms.includes('myapp nodesockd'), `the daemon: ${comms.join(', ')}`);

    const slow = httpRequest({ socketPath: path.join(sockets, 'app.0.sock') }, { path: '/slow?ms=2000' });
    await waitFor(
      'the slow request to be in flight',
      () => slowStarted((...c) => must('docker', ['exec', name, ...c])),
      {
        intervalMs: 200,
      },
    );
    const stopped = await run('docker', ['stop', name]);
    assert.equal(stopped.code, 0, stopped.stderr);
    const res = await slow;
    assert.equal(res.status, 200);
    assert.equal((JSON.parse(res.body) as { waited: number }).waited, 2000);
    // 0: the daemon drained and exited on SIGTERM; 137 would be Docker's SIGKILL at the stop timeout.
    assert.equal(await must('docker', ['inspect', '-f', '{{.State.ExitCode}}', name]), '0');
  });

  test('compose: nginx in its own container answers through the sockets on a shared volume', async (t) => {
    if (!composeCmd) {
      t.skip('neither `docker compose` nor `docker-compose` is installed (apt-get install docker-compose)');
      return;
    }
    const [cmd, ...pre] = composeCmd as [string, ...string[]];
    const dc = (...args: string[]) =>
      must(cmd, [...pre, '-p', project, ...args], { cwd: ctx, env: composeEnv });
    // depends_on: socket-dir completed, then app healthy, then nginx: `up` returns after all three.
    await dc('up', '-d', '--build');
    const port = Number((composeEnv.HTTP_PORT as string).split(':')[1]);
    const first = await waitFor('nginx to answer 200', async () => {
      const r = await httpRequest({ port }, { path: '/' });
      return r.status === 200 ? r : null;
    });
    assert.notEqual((JSON.parse(first.body) as { worker: string }).worker, 'standalone');
    assert.equal(
      await dc('exec', '-T', 'app', 'stat', '-c', '%u:%g %a', SOCKETS),
      `${APP_UID}:${NGINX_GID} 2750`,
    );

    const slow = httpRequest({ port }, { path: '/slow?ms=2000' });
    await waitFor(
      'the slow request to be in flight',
      () => slowStarted((...c) => dc('exec', '-T', 'app', ...c)),
      {
        intervalMs: 200,
      },
    );
    const app = await dc('ps', '-q', 'app');
    await dc('stop', 'app');
    const res = await slow;
    assert.equal(res.status, 200, `through nginx while the app stopped: ${res.body}`);
    assert.equal(await must('docker', ['inspect', '-f', '{{.State.ExitCode}}', app]), '0');
  });
});
