import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { describe, test } from 'node:test';
import { BIN, cli, makeTempDir } from './helpers/daemon';

const has = (shell: string) => spawnSync(shell, ['-c', 'true']).status === 0;

/**
 * What the completion offers for `words` (the last one being completed), the script loaded
 * the way its header says: `eval "$(nodesockd completion <shell>)"`. zsh calls the function as
 * its `_bash_complete` does (arrays from 0, ksharrays); its `compgen` leaves the match on the
 * word typed so far (PREFIX) to `compadd`, done here.
 */
function complete(shell: 'bash' | 'zsh', words: string[], cwd?: string): string[] {
  const load = `eval "$('${process.execPath}' '${BIN}' completion ${shell})"`;
  const array = words.map((w) => `'${w}'`).join(' ');
  const call = `COMP_WORDS=(${array}); COMP_CWORD=${words.length - 1}; _nodesockd; printf '%s\\n' "\${COMPREPLY[@]}"`;
  const script =
    shell === 'bash'
      ? `${load}; ${call}`
      : `autoload -U compinit && compinit -u; ${load}; setopt ksharrays; PREFIX='${words.at(-1)}'; ${call}`;
  const r = spawnSync(shell, shell === 'zsh' ? ['-f', '-c', script] : ['-c', script], {
    encoding: 'utf8',
    cwd,
  });
  assert.equal(r.status, 0, r.stderr);
  assert.equal(r.stderr, '');
  const typed = words.at(-1)!;
  return r.stdout.split('\n').filter((l) => l !== '' && (shell === 'bash' || l.startsWith(typed)));
}

for (const shell of ['bash', 'zsh'] as const) {
  describe(`nodesockd completion ${shell}`, {
    skip: has(shell) ? false : `${shell} is not installed`,
  }, () => {
    test('the commands, every one the CLI has', async () => {
      const help = (await cli(['--help'])).stdout;
      const commands = [...help.matchAll(/^ {2}([a-z-]+)(?: \[options\]| <| \[|\s)/gm)]
        .map((m) => m[1]!)
        .filter((c) => c !== 'help');
      assert.ok(commands.includes('ls') && commands.includes('logs'), help);
      const offered = complete(shell, ['nodesockd', '']);
      for (const command of commands)
        assert.ok(offered.includes(command), `${command} in ${offered.join(' ')}`);
      assert.deepEqual(complete(shell, ['nodesockd', 're']).sort(), ['reload', 'restart', 'resume']);
    });

    test("a command's options, after global options and their values", () => {
      assert.deepEqual(complete(shell, ['nodesockd', 'restart', '--s']), ['--suspended']);
      assert.deepEqual(complete(shell, ['nodesockd', 'status', '--']).sort(), [
        '--config',
        '--debug',
        '--help',
        '--ipc',
        '--ipc-file',
        '--json',
        '--verbose',
        '--watch',
      ]);
      assert.deepEqual(complete(shell, ['nodesockd', '-c', 'app.yaml', 'sta']), ['start', 'status']);
      assert.deepEqual(complete(shell, ['nodesockd', 'completion', 'z']), ['zsh']);
    });

    test('the value of an option that takes one is a file; a flag of the same letter elsewhere is not', () => {
      const dir = makeTempDir('nsd-compl-');
      fs.writeFileSync(path.join(dir, 'nodesockd.yaml'), '');
      assert.deepEqual(complete(shell, ['nodesockd', 'status', '-c', 'node'], dir), ['nodesockd.yaml']);
      // -s is --script (a value) for daemon, --suspended (a flag) for restart.
      assert.deepEqual(complete(shell, ['nodesockd', 'daemon', '-s', 'node'], dir), ['nodesockd.yaml']);
      assert.deepEqual(complete(shell, ['nodesockd', 'restart', '-s', '--up'], dir), ['--upgrade']);
    });
  });
}

test('completion of another shell: one line naming the shells, exit 1', async () => {
  const r = await cli(['completion', 'fish']);
  assert.equal(r.code, 1);
  assert.equal(r.stdout, '');
  assert.match(r.stderr.split('\n')[0]!, /^error: .*'fish'.*Allowed choices are bash, zsh\.$/);
});
