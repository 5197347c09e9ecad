import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { afterEach, describe, test } from 'node:test';
import { type AppDir, makeApp, teardown } from './helpers/app';
import { BIN, cli, Daemon } from './helpers/daemon';
import { getJson } from './helpers/http';
import { NGINX_BIN } from './helpers/nginx';
import { waitFor } from './helpers/wait';

let daemon: Daemon | undefined;
let app: AppDir;

afterEach(async () => {
  await teardown(daemon, app);
  daemon = undefined;
});

describe('operations', () => {
  test('SIGUSR2 reopens the log files (logrotate)', async () => {
    app = makeApp({ workers: 1, stdout: 'out.log', outputPrefix: '' });
    daemon = await Daemon.start(['daemon', '-c', app.configFile], app.ipcFile);
    const log = path.join(app.dir, 'out.log');
    await getJson({ socketPath: app.published(0) }, '/?log=before');
    await waitFor(
      'the line in out.log',
      () => fs.existsSync(log) && /request log line/.test(fs.readFileSync(log, 'utf8')),
    );
    fs.renameSync(log, `${log}.1`);
    daemon.child.kill('SIGUSR2');
    await daemon.waitOutput(/SIGUSR2: log files reopened/);
    await getJson({ socketPath: app.published(0) }, '/?log=after');
    await waitFor(
      'a new out.log with the next line',
      () => fs.existsSync(log) && /request log line/.test(fs.readFileSync(log, 'utf8')),
    );
    assert.equal(fs.readFileSync(`${log}.1`, 'utf8').match(/request log line/g)?.length, 1);
  });

  test('`nodesockd nginx` prints an upstream over the published paths that nginx accepts', async () => {
    app = makeApp({ workers: 3, upstreamKeepaliveTimeout: 5000, name: 'shop' });
    const r = await cli(['nginx', '-c', app.configFile, '--listen', '127.0.0.1:18080']);
    assert.equal(r.code, 0, r.stderr);
    for (const slot of [0, 1, 2])
      assert.ok(r.stdout.includes(`server unix:${app.published(slot)} max_fails=0;`));
    assert.doesNotMatch(r.stdout, /app\.3\.sock/);
    assert.match(r.stdout, /keepalive_timeout 5s;/);
    assert.match(r.stdout, /proxy_set_header Connection "";/);
    if (NGINX_BIN) {
      // The real nginx parses it (wrapped in the main context a site file is included from).
      const dir = path.join(app.dir, 'nginx');
      fs.mkdirSync(dir);
      const conf = path.join(dir, 'nginx.conf');
      fs.writeFileSync(conf, `pid ${dir}/nginx.pid;\nevents {}\nhttp {\n${r.stdout}\n}\n`);
      execFileSync(NGINX_BIN, ['-t', '-q', '-p', dir, '-c', conf, '-e', path.join(dir, 'error.log')], {
        stdio: 'pipe',
      });
    }
  });

  test('`nodesockd systemd` prints a unit that supports adoption and upgrades', async () => {
    app = makeApp({ workers: 1, name: 'shop' });
    const r = await cli(['systemd', '-c', app.configFile]);
    assert.equal(r.code, 0, r.stderr);
    const lines = r.stdout.split('\n');
    assert.ok(lines.includes('KillMode=process'), 'workers survive the daemon leaving');
    assert.ok(lines.includes('Restart=always'), 'a handover (exit 0) brings up the new version');
    assert.ok(lines.includes('Environment=NODESOCKD_SUPERVISED=1'), 'the daemon knows systemd restarts it');
    assert.ok(lines.includes(`ExecStart=${process.execPath} ${BIN} daemon --config ${app.configFile}`));
    assert.ok(lines.includes(`WorkingDirectory=${app.dir}`));
    assert.ok(lines.includes('ExecReload=/bin/kill -HUP $MAINPID'));
    assert.ok(lines.some((l) => /^User=\S+$/.test(l)));
  });
});
