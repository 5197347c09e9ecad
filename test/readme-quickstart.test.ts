/**
 * The README's "Quick start with nginx", followed literally: its app, its config (the socket
 * directory moved to a temp one), its commands in the app's directory with no `-c`, and the
 * nginx block `nodesockd nginx` prints, which must be the README's, behind a real nginx.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { after, describe, test } from 'node:test';
import { teardown } from './helpers/app';
import { cli, Daemon, makeTempDir, ROOT } from './helpers/daemon';
import { httpRequest } from './helpers/http';
import { freePort, isRoot, NGINX_BIN, NGINX_USER, Nginx, prepareSocketDir } from './helpers/nginx';
import { waitFor } from './helpers/wait';

const skip = NGINX_BIN ? false : 'nginx is not installed (npm test installs it when run as root on Debian)';

const README = fs.readFileSync(path.join(ROOT, 'README.md'), 'utf8');
const QUICK_START = README.slice(README.indexOf('## Quick start with nginx'), README.indexOf('## Commands'));

/** The body of the quick start's first ```lang block. */
function block(lang: string): string {
  const found = new RegExp(`\`\`\`${lang}\\n([\\s\\S]*?)\`\`\``).exec(QUICK_START);
  assert.ok(found, `a ${lang} block in the README's quick start`);
  return found[1]!;
}

/** nginx config without its comments and blank lines, each line trimmed: what nginx reads. */
const directives = (conf: string) =>
  conf
    .split('\n')
    .map((l) => l.replace(/#.*$/, '').trim())
    .filter((l) => l !== '');

let daemon: Daemon | undefined;
let nginx: Nginx | undefined;

after(() => nginx?.stop());

describe("the README's quick start, literally", { skip }, () => {
  test('its app and config run behind the nginx block it shows; restart, restart --suspended and resume work', async (t) => {
    const dir = makeTempDir('nsd-readme-');
    const tmpDir = path.join(dir, 'run', 'myapp');
    const app = {
      dir,
      tmpDir,
      ipcFile: path.join(tmpDir, 'nodesockd.ipc'),
      configFile: path.join(dir, 'nodesockd.yaml'),
      published: (slot: number) => path.join(tmpDir, `app.${slot}.sock`),
    };
    t.after(() => teardown(daemon, app));
    // Step 1 and 2: the files as printed, the app's packages installed.
    fs.writeFileSync(path.join(dir, 'app.js'), block('js'));
    const config = block('yaml');
    assert.match(config, /^script: app\.js /m, 'the config runs the file of step 1');
    fs.writeFileSync(app.configFile, config.replace('/run/myapp', tmpDir));
    fs.mkdirSync(path.join(dir, 'node_modules'));
    fs.symlinkSync(ROOT, path.join(dir, 'node_modules', 'nodesockd'));
    fs.symlinkSync(path.join(ROOT, 'node_modules', 'express'), path.join(dir, 'node_modules', 'express'));
    // Step 3: the socket directory, with nginx's group (these tests' nginx runs as nobody).
    prepareSocketDir(tmpDir);
    const run = (args: string[]) => cli(args, { cwd: dir });
    const check = await run(['check', ...(isRoot ? ['--nginx-user', NGINX_USER] : [])]);
    assert.equal(check.code, 0, check.stdout + check.stderr);
    assert.match(check.stdout, /^0 error\(s\)/m);

    // Step 4: what `nodesockd nginx --server-name example.com` prints is the README's block.
    const shown = await run(['nginx', '--server-name', 'example.com']);
    assert.equal(shown.code, 0, shown.stderr);
    assert.deepEqual(directives(shown.stdout), directives(block('nginx').replaceAll('/run/myapp', tmpDir)));

    // Step 5: the daemon, found by config discovery in the app's directory.
    daemon = await Daemon.start(['daemon'], app.ipcFile, { cwd: dir, online: 4 });
    const port = await freePort();
    const site = await run(['nginx', '--server-name', 'example.com', '--listen', `127.0.0.1:${port}`]);
    nginx = await Nginx.start(path.join(dir, 'nginx'), [], { port, site: site.stdout });
    const get = () => httpRequest({ port }, { headers: { host: 'example.com' } });
    const first = await get();
    assert.deepEqual([first.status, first.body], [200, 'hello']);

    // Step 6: deploys.
    const restart = await run(['restart']);
    assert.equal(restart.code, 0, restart.stderr);
    assert.deepEqual(await get().then((r) => [r.status, r.body]), [200, 'hello']);
    const suspended = await run(['restart', '--suspended']);
    assert.equal(suspended.code, 0, suspended.stderr);
    const held = get();
    await waitFor('the request held by a suspended worker', async () =>
      (await daemon!.status()).workers.some((w) => (w.inflight ?? 0) > 0),
    );
    const resume = await run(['resume']);
    assert.equal(resume.code, 0, resume.stderr);
    assert.deepEqual(await held.then((r) => [r.status, r.body]), [200, 'hello']);
    assert.equal((await run(['health'])).code, 0);
  });
});
