/**
 * The container recipes agree with each other and with nodesockd (no Docker needed): the grace
 * periods cover the drain the config allows, the nginx config is what `nodesockd nginx` prints
 * for it, the probes use `nodesockd health` and the metrics listener's /healthz and /readyz,
 * and the init steps give the socket directory the Dockerfile's user and nginx's group.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import YAML from 'yaml';
import { cli, ROOT } from '../helpers/daemon';

const DIR = path.join(ROOT, 'examples/containers');
const read = (f: string) => fs.readFileSync(path.join(DIR, f), 'utf8');
const config = YAML.parse(read('nodesockd.yaml')) as {
  shutdownTimeout: number;
  killTimeout: number;
  tmpDir: string;
};
const drainSeconds = (config.shutdownTimeout + config.killTimeout) / 1000;

interface Container {
  name: string;
  command?: string[];
  lifecycle?: { preStop?: { exec?: { command: string[] } } };
  readinessProbe?: { exec?: { command: string[] } };
  livenessProbe?: { httpGet?: { path: string } };
  startupProbe?: { httpGet?: { path: string } };
}
const pod = (
  YAML.parse(read('kubernetes.yaml')) as {
    spec: {
      template: {
        spec: { terminationGracePeriodSeconds: number; initContainers: Container[]; containers: Container[] };
      };
    };
  }
).spec.template.spec;
const app = pod.containers.find((c) => c.name === 'app') as Container;
const nginx = pod.containers.find((c) => c.name === 'nginx') as Container;

/** The seconds a preStop hook sleeps before the container gets its SIGTERM. */
function preStopSeconds(c: Container): number {
  const cmd = (c.lifecycle?.preStop?.exec?.command ?? []).join(' ');
  return Number(/sleep (\d+)/.exec(cmd)?.[1] ?? 0);
}

test('kubernetes: the grace period covers the preStop sleep and the drain nodesockd.yaml allows', () => {
  assert.ok(preStopSeconds(app) > 0 && preStopSeconds(nginx) > 0, 'both containers have a preStop');
  assert.match((nginx.lifecycle?.preStop?.exec?.command ?? []).join(' '), /nginx -s quit/);
  assert.ok(
    pod.terminationGracePeriodSeconds >= preStopSeconds(app) + drainSeconds,
    `terminationGracePeriodSeconds ${pod.terminationGracePeriodSeconds} < preStop ${preStopSeconds(app)} + ${drainSeconds}`,
  );
});

test('kubernetes: readiness is nodesockd health, liveness /healthz, startup /readyz', () => {
  assert.deepEqual(app.readinessProbe?.exec?.command.slice(0, 2), ['nodesockd', 'health']);
  assert.equal(app.livenessProbe?.httpGet?.path, '/healthz');
  assert.equal(app.startupProbe?.httpGet?.path, '/readyz');
});

test('compose: the stop grace period covers the drain, the init step and depends_on order the start', () => {
  const compose = YAML.parse(read('compose.yaml')) as {
    services: Record<
      string,
      { stop_grace_period?: string; depends_on?: Record<string, { condition: string }> }
    >;
  };
  const grace = Number(/^(\d+)s$/.exec(compose.services.app?.stop_grace_period ?? '')?.[1]);
  assert.ok(grace >= drainSeconds, `stop_grace_period ${grace}s < ${drainSeconds}s`);
  assert.equal(compose.services.app?.depends_on?.['socket-dir']?.condition, 'service_completed_successfully');
  assert.equal(compose.services.nginx?.depends_on?.app?.condition, 'service_healthy');
});

test("the init steps give the socket directory the Dockerfile's app uid and nginx gid, mode 2750", () => {
  const dockerfile = read('Dockerfile');
  const uid = /ARG APP_UID=(\d+)/.exec(dockerfile)?.[1];
  const gid = /ARG NGINX_GID=(\d+)/.exec(dockerfile)?.[1];
  const k8sInit = (pod.initContainers[0]?.command ?? []).join(' ');
  assert.match(k8sInit, new RegExp(`chown ${uid}:${gid} ${config.tmpDir} && chmod 2750 ${config.tmpDir}`));
  assert.match(read('compose.yaml'), new RegExp(`chown \\$\\{APP_UID:-${uid}\\}:\\$\\{NGINX_GID:-${gid}\\}`));
  assert.match(dockerfile, /STOPSIGNAL SIGTERM/);
  assert.match(dockerfile, /HEALTHCHECK[^\n]*\n\s*CMD \["nodesockd", "health"/);
  assert.match(dockerfile, /ENTRYPOINT \["tini", "--"\]/);
});

test('nginx.conf is what `nodesockd nginx --listen 80` prints for the recipe config', async () => {
  const r = await cli(['nginx', '--listen', '80', '-c', path.join(DIR, 'nodesockd.yaml')]);
  assert.equal(r.code, 0, r.stderr);
  assert.equal(read('nginx.conf'), r.stdout);
});
