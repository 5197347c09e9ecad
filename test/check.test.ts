import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { afterEach, describe, test } from 'node:test';
import { type AppDir, makeApp, teardown } from './helpers/app';
import { cli, Daemon } from './helpers/daemon';
import { httpRequest } from './helpers/http';
import {
  freePort,
  isRoot,
  NGINX_BIN,
  NGINX_GROUP,
  NGINX_USER,
  Nginx,
  prepareSocketDir,
} from './helpers/nginx';
import { waitFor } from './helpers/wait';

// `nodesockd check` through the binary: whether nginx's user can reach the sockets (real users,
// real directories), and the slips the schema cannot see (ports, env, timeouts).

let daemon: Daemon | undefined;
let app: AppDir | undefined;

afterEach(async () => {
  if (app) await teardown(daemon, app);
  daemon = undefined;
  app = undefined;
});

/** nginx's user in the tests that run as any user: nobody, or daemon when the tests run as nobody. */
const WEB = execFileSync('id', ['-un']).toString().trim() === NGINX_USER ? 'daemon' : NGINX_USER;
const WEB_GROUP = execFileSync('id', ['-gn', WEB]).toString().trim();
const ROOT_ONLY = isRoot ? false : 'needs root (chgrp to nginx group, chown to another user)';
const escapeRe = (s: string) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
const lines = (out: string, re: RegExp) => out.split('\n').filter((l) => re.test(l));

/** An nginx.conf with a `user` line, as `--nginx-conf` reads it. */
function nginxConf(dir: string, userLine: string): string {
  const file = path.join(dir, 'nginx.conf');
  fs.writeFileSync(file, `# a test nginx\n${userLine}\nworker_processes 1;\nevents {}\n`);
  return file;
}

describe("check: nginx's user and the sockets", () => {
  test("a tmpDir whose group is not nginx's is an error with the chgrp; nginx's group passes", async (t) => {
    app = makeApp({ workers: 1 });
    prepareSocketDir(app.tmpDir); // parents searchable; as root, group nogroup
    // The first-day mistake: the app's own group (here: this user's), not nginx's.
    fs.chownSync(app.tmpDir, process.getuid!(), process.getgid!());
    fs.chmodSync(app.tmpDir, 0o2750);
    const conf = nginxConf(app.dir, `user ${WEB};`);
    const r = await cli(['check', '-c', app.configFile, '--nginx-conf', conf]);
    assert.equal(r.code, 1, r.stdout);
    const [line, ...more] = lines(r.stdout, /nginx's user/);
    assert.equal(more.length, 0, r.stdout);
    assert.match(
      line!,
      new RegExp(
        `^error: nginx's user ${WEB} \\(uid \\d+, groups ${WEB_GROUP}; the user line of ${escapeRe(conf)}\\) ` +
          `cannot enter ${escapeRe(app.tmpDir)} \\(mode 2750, .*\\), so nginx cannot reach the sockets .*` +
          `run: chgrp ${WEB_GROUP} ${escapeRe(app.tmpDir)} && chmod 2750 ${escapeRe(app.tmpDir)}$`,
      ),
    );
    // The same from --nginx-user.
    const named = await cli(['check', '-c', app.configFile, '--nginx-user', WEB]);
    assert.match(
      named.stdout,
      new RegExp(`^error: nginx's user ${WEB} \\(uid \\d+, .*; --nginx-user\\) cannot enter `, 'm'),
    );

    if (!isRoot) {
      t.skip('chgrp to the nginx group needs root: the passing half is skipped');
      return;
    }
    prepareSocketDir(app.tmpDir); // the fix: root:nogroup 2750
    const ok = await cli(['check', '-c', app.configFile, '--nginx-conf', conf]);
    assert.equal(ok.code, 0, ok.stdout);
    assert.match(ok.stdout, /^setup OK$/m);
  });

  test('with nginx running here: its 502, then check finds its user by `nginx -T` and the fix makes both pass', {
    skip: !isRoot
      ? 'needs root (nginx workers as nobody, chgrp)'
      : !NGINX_BIN
        ? 'nginx is not installed'
        : false,
  }, async () => {
    app = makeApp({ workers: 1 });
    prepareSocketDir(app.tmpDir);
    fs.chownSync(app.tmpDir, 0, 0); // the mistake: the app's own group
    daemon = await Daemon.start(['daemon', '-c', app.configFile], app.ipcFile);
    const nginx = await Nginx.start(path.join(app.dir, 'nginx'), [app.published(0)]);
    try {
      assert.equal((await httpRequest({ port: nginx.port })).status, 502);
      assert.match(nginx.errorLog(), /13: Permission denied/);
      const r = await daemon.cli(['check', '-c', app.configFile]);
      assert.equal(r.code, 1, r.stdout);
      const conf = path.join(app.dir, 'nginx', 'nginx.conf');
      assert.match(
        r.stdout,
        new RegExp(
          `^error: nginx's user ${NGINX_USER} \\(uid \\d+, groups ${NGINX_GROUP}; the user line of \`nginx -T -p \\S+ -c ${escapeRe(conf)} .*\` \\(the running nginx\\)\\) cannot enter ${escapeRe(app.tmpDir)} .*run: chgrp ${NGINX_GROUP} `,
          'm',
        ),
      );
      prepareSocketDir(app.tmpDir); // the fix check gave
      assert.equal((await daemon.cli(['restart'])).code, 0); // sockets with the new group
      const ok = await daemon.cli(['check', '-c', app.configFile]);
      assert.equal(ok.code, 0, ok.stdout);
      assert.equal((await httpRequest({ port: nginx.port })).status, 200);
    } finally {
      await nginx.stop();
    }
  });

  test('a parent directory nginx cannot search is named, with chmod o+x', async () => {
    app = makeApp({ workers: 1 });
    fs.chmodSync(app.tmpDir, 0o2750);
    fs.chmodSync(app.dir, 0o700);
    const r = await cli(['check', '-c', app.configFile, '--nginx-user', WEB]);
    assert.equal(r.code, 1, r.stdout);
    assert.match(
      r.stdout,
      new RegExp(
        `^error: nginx's user ${WEB} .* cannot enter ${escapeRe(app.dir)} \\(mode 0700, .*run: chmod o\\+x ${escapeRe(app.dir)}$`,
        'm',
      ),
    );
  });

  test('an nginx user this host does not know is one line asking for uid:gid', async () => {
    app = makeApp({ workers: 1 });
    const r = await cli(['check', '-c', app.configFile, '--nginx-user', 'no-such-nginx-user']);
    assert.equal(r.code, 1);
    assert.match(
      r.stdout,
      /^error: nginx's user no-such-nginx-user \(--nginx-user\) does not exist on this host; .*--nginx-user uid:gid/m,
    );
  });

  test('sockets made before a chgrp: nginx cannot connect until the workers restart', {
    skip: ROOT_ONLY,
  }, async () => {
    app = makeApp({ workers: 2 });
    prepareSocketDir(app.tmpDir);
    fs.chownSync(app.tmpDir, 0, 0); // the sockets get group root
    daemon = await Daemon.start(['daemon', '-c', app.configFile], app.ipcFile, { online: 2 });
    prepareSocketDir(app.tmpDir); // chgrp nogroup, as the operator then does
    const conf = nginxConf(app.dir, `user ${NGINX_USER} ${NGINX_GROUP};`);
    const r = await daemon.cli(['check', '-c', app.configFile, '--nginx-conf', conf]);
    assert.equal(r.code, 1, r.stdout);
    assert.match(
      r.stdout,
      new RegExp(
        `^error: nginx's user nobody .* cannot connect to ${escapeRe(app.published(0))} \\(mode 0770, root:root\\); run: .*then nodesockd restart`,
        'm',
      ),
    );
    assert.equal((await daemon.cli(['restart'])).code, 0);
    const ok = await daemon.cli(['check', '-c', app.configFile, '--nginx-conf', conf]);
    assert.equal(ok.code, 0, ok.stdout);
  });

  test('no SETGID bit: the sockets the daemon will make get the wrong group', {
    skip: ROOT_ONLY,
  }, async () => {
    app = makeApp({ workers: 1 });
    prepareSocketDir(app.tmpDir);
    fs.chmodSync(app.tmpDir, 0o750);
    const r = await cli(['check', '-c', app.configFile, '--nginx-user', NGINX_USER]);
    assert.equal(r.code, 1, r.stdout);
    assert.match(
      r.stdout,
      /^error: nginx's user nobody .* will not be able to connect to the sockets made in .*: they get mode 0770, root:root \(this user's group: tmpDir has no SETGID bit\); run: chgrp /m,
    );
  });
});

describe('check: what the schema cannot see', () => {
  const self = () => ['--nginx-user', String(process.getuid?.())];

  test('devServer and metrics ports in use are warnings; a free metrics port given as a number is served', async () => {
    const holder = net.createServer();
    await new Promise<void>((resolve) => holder.listen(0, '127.0.0.1', resolve));
    const taken = (holder.address() as net.AddressInfo).port;
    try {
      app = makeApp({ workers: 1, devServer: taken, metrics: taken });
      fs.chmodSync(app.tmpDir, 0o2750);
      const r = await cli(['check', '-c', app.configFile, ...self()]);
      assert.equal(r.code, 0, r.stdout + r.stderr);
      assert.match(
        r.stdout,
        new RegExp(
          `^warning: devServer: the daemon cannot listen on 127\\.0\\.0\\.1:${taken} \\(port ${taken} is in use by another process\\)`,
          'm',
        ),
      );
      assert.match(
        r.stdout,
        new RegExp(
          `^warning: metrics ${taken}: the daemon cannot listen on 127\\.0\\.0\\.1:${taken} \\(port ${taken} is in use`,
          'm',
        ),
      );
    } finally {
      holder.close();
    }
    // `metrics: <number>` (a YAML number, as the docs write it) is a port.
    fs.rmSync(app.dir, { recursive: true, force: true });
    const port = await freePort();
    app = makeApp({ workers: 1, metrics: port });
    fs.chmodSync(app.tmpDir, 0o2750);
    const ok = await cli(['check', '-c', app.configFile, ...self()]);
    assert.equal(ok.code, 0, ok.stdout + ok.stderr);
    assert.match(ok.stdout, /^setup OK$/m);
    daemon = await Daemon.start(['daemon', '-c', app.configFile], app.ipcFile);
    const scrape = await waitFor('the metrics on the numbered port', () =>
      httpRequest({ port }, { path: '/metrics' }).catch(() => undefined),
    );
    assert.equal(scrape.status, 200);
    assert.match(scrape.body, /^nodesockd_/m);
  });

  test('a tmpDir in a directory other users can write (sticky or not) is a warning naming it, with /run/<app>', async () => {
    app = makeApp({ workers: 1 });
    const a = app;
    fs.chmodSync(a.dir, 0o1777);
    const exposed = await cli(['check', '-c', a.configFile, ...self()]);
    assert.match(
      exposed.stdout,
      new RegExp(
        `^warning: tmpDir ${escapeRe(a.tmpDir)} lies in ${escapeRe(a.dir)}, which other users can write \\(mode 1777\\): if it is removed .*anyone can create that name first.*; use /run/<app> \\(systemd RuntimeDirectory=<app>\\)`,
        'm',
      ),
    );
    fs.chmodSync(a.dir, 0o755);
    const kept = await cli(['check', '-c', a.configFile, ...self()]);
    assert.doesNotMatch(kept.stdout, new RegExp(`lies in ${escapeRe(a.dir)},`));
  });

  test('an env name with no value that is unset here, and shutdownTimeout not above the keepalive, are warnings', async () => {
    app = makeApp({
      workers: 1,
      env: ['NSD_TEST_UNSET_NAME', 'NSD_TEST_GIVEN=1', 'PATH'],
      shutdownTimeout: 30_000,
      upstreamKeepaliveTimeout: 60_000,
    });
    fs.chmodSync(app.tmpDir, 0o2750);
    const env = { ...process.env };
    delete env.NSD_TEST_UNSET_NAME;
    const r = await cli(['check', '-c', app.configFile, ...self()], { env });
    assert.equal(r.code, 0, r.stdout);
    assert.deepEqual(lines(r.stdout, /^warning: env /), [
      "warning: env NSD_TEST_UNSET_NAME is not set in this environment: workers get it only if the daemon's environment has it; set it there, or write NSD_TEST_UNSET_NAME=value in env",
    ]);
    assert.match(
      r.stdout,
      /^warning: shutdownTimeout \(30000 ms\) is not above upstreamKeepaliveTimeout \(60000 ms\): a worker that drains the old way \(stop, terminate, fewer workers, and those a restart cannot move\) .*raise shutdownTimeout above 60000/m,
    );
    const set = await cli(['check', '-c', app.configFile, ...self()], {
      env: { ...env, NSD_TEST_UNSET_NAME: 'x' },
    });
    assert.deepEqual(lines(set.stdout, /^warning: env /), []);
  });

  test('as root on a directory of another user, it says to run as that user, not to chown it to root', {
    skip: ROOT_ONLY,
  }, async () => {
    app = makeApp({ workers: 1 });
    prepareSocketDir(app.tmpDir);
    const nobody = Number(
      fs
        .readFileSync('/etc/passwd', 'utf8')
        .split('\n')
        .find((l) => l.startsWith(`${NGINX_USER}:`))!
        .split(':')[2],
    );
    fs.chownSync(app.tmpDir, nobody, fs.statSync(app.tmpDir).gid);
    const r = await cli(['check', '-c', app.configFile, ...self()]);
    assert.equal(r.code, 1, r.stdout);
    assert.match(
      r.stdout,
      new RegExp(
        `^error: tmpDir ${escapeRe(app.tmpDir)} belongs to uid ${nobody}, not to this user \\(uid 0\\) or root; run the daemon as its owner nobody, not as root \\(runuser -u nobody -- npx nodesockd daemon, or User=nobody in its systemd unit, as nodesockd systemd run as root writes it\\)$`,
        'm',
      ),
    );
    assert.doesNotMatch(r.stdout, /chown 0/);
  });
});
