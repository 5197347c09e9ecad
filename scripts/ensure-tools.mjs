// Makes sure the tools the tests drive are installed: nginx, prometheus (and wrk for bench/).
// Installs them with apt-get when missing and allowed (root, Debian); otherwise says what
// is missing and the nginx tests report themselves skipped.
import { execFileSync, spawnSync } from 'node:child_process';
import fs from 'node:fs';

const want = [
  {
    bin: 'nginx',
    pkg: 'nginx',
    paths: ['/usr/sbin/nginx', '/usr/local/sbin/nginx', '/usr/local/nginx/sbin/nginx'],
  },
  { bin: 'wrk', pkg: 'wrk', paths: ['/usr/bin/wrk', '/usr/local/bin/wrk'] },
  // The shell completion tests run the generated script in zsh as well as bash.
  { bin: 'zsh', pkg: 'zsh', paths: ['/usr/bin/zsh', '/bin/zsh'] },
  // The metrics tests: a real Prometheus scrapes the daemon; promtool checks the text.
  { bin: 'promtool', pkg: 'prometheus', paths: ['/usr/bin/promtool', '/usr/local/bin/promtool'] },
];

const found = (tool) =>
  tool.paths.some((p) => fs.existsSync(p)) || spawnSync('sh', ['-c', `command -v ${tool.bin}`]).status === 0;

const missing = want.filter((t) => !found(t));
if (missing.length === 0) process.exit(0);

const names = missing.map((t) => t.pkg);
const canApt = process.getuid?.() === 0 && spawnSync('sh', ['-c', 'command -v apt-get']).status === 0;
if (!canApt) {
  console.warn(
    `ensure-tools: missing ${names.join(', ')}; install them (apt-get install ${names.join(' ')}) to run every test`,
  );
  process.exit(0);
}
console.log(`ensure-tools: installing ${names.join(', ')} with apt-get`);
const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
try {
  execFileSync('apt-get', ['install', '-y', '--no-install-recommends', ...names], { stdio: 'inherit', env });
} catch {
  execFileSync('apt-get', ['update'], { stdio: 'inherit', env });
  execFileSync('apt-get', ['install', '-y', '--no-install-recommends', ...names], { stdio: 'inherit', env });
}
