import test from 'ava';
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { createRequire } from 'node:module';
import { installHooks, uninstallHooks, hookCommand } from '../../src/bridge/hooks-install.js';
import { UsageError } from '../../src/core/errors.js';
import { withGitRepo, PROJECT_ROOT, type GitRepo } from '../helpers/git-repo.js';

/** A stand-in for the CLI: appends its arguments as one line to `calls.log`. */
function fakeCli(repo: GitRepo): { cliPath: string; calls: () => string[] } {
  const cliPath = path.join(repo.root, 'fake cli', "it's-cli.mjs"); // space and quote: quoting must hold
  const log = path.join(repo.root, 'calls.log');
  fs.mkdirSync(path.dirname(cliPath), { recursive: true });
  fs.writeFileSync(cliPath, `import { appendFileSync } from 'node:fs';\nappendFileSync(${JSON.stringify(log)}, process.argv.slice(2).join(' ') + '\\n');\nconsole.log('noise'); console.error('noise');\nprocess.exit(3);\n`);
  return { cliPath, calls: () => (fs.existsSync(log) ? fs.readFileSync(log, 'utf8').trim().split('\n').filter(Boolean) : []) };
}

test('plain repository: install, hooks run with git arguments, idempotent, uninstall removes', async (t) => {
  const repo = withGitRepo(t);
  const first = repo.commit('first', { 'a.txt': 'a\n' });
  const { cliPath, calls } = fakeCli(repo);
  const options = { repoDir: repo.dir, cliPath, nodePath: process.execPath, env: repo.env };
  const hooks = path.join(repo.dir, '.git', 'hooks');
  const result = await installHooks(options);
  t.deepEqual(result, {
    installed: [
      { hook: 'post-commit', file: path.join(hooks, 'post-commit'), chained: false, via: 'git' },
      { hook: 'post-checkout', file: path.join(hooks, 'post-checkout'), chained: false, via: 'git' },
    ],
  });
  const content = fs.readFileSync(path.join(hooks, 'post-commit'), 'utf8');
  t.is(fs.statSync(path.join(hooks, 'post-commit')).mode & 0o777, 0o755);
  t.deepEqual(await installHooks(options), result);
  t.is(fs.readFileSync(path.join(hooks, 'post-commit'), 'utf8'), content);

  const second = repo.commit('second', { 'b.txt': 'b\n' });
  repo.git(['checkout', '-q', '-b', 'topic']); // same commit: HEAD moves, flag 1
  repo.git(['checkout', '-q', first]);
  repo.git(['checkout', '-q', second, '--', 'a.txt']); // file checkout: flag 0
  t.deepEqual(calls(), [
    'aggregate --source=git-commit --hook',
    `aggregate --source=git-checkout --prev=${second} --new=${second} --flag=1 --hook`,
    `aggregate --source=git-checkout --prev=${second} --new=${first} --flag=1 --hook`,
    `aggregate --source=git-checkout --prev=${first} --new=${first} --flag=0 --hook`,
  ]);

  t.deepEqual(await uninstallHooks(options), {
    removed: [
      { hook: 'post-commit', file: path.join(hooks, 'post-commit'), via: 'git', action: 'removed' },
      { hook: 'post-checkout', file: path.join(hooks, 'post-checkout'), via: 'git', action: 'removed' },
    ],
  });
  t.false(fs.existsSync(path.join(hooks, 'post-commit')));
  t.is((await uninstallHooks(options)).removed[0]?.action, 'absent');
});

test('plain repository: an existing hook is chained (both run, its status kept) and restored byte for byte', async (t) => {
  const repo = withGitRepo(t);
  repo.commit('first', { 'a.txt': 'a\n' });
  const { cliPath, calls } = fakeCli(repo);
  const hooks = path.join(repo.dir, '.git', 'hooks');
  const origLog = path.join(repo.root, 'orig.log');
  const original = `#!/bin/sh\n# my own hook, no final newline\necho "orig $*" >> '${origLog}'\nexit 5`;
  fs.writeFileSync(path.join(hooks, 'post-checkout'), original, { mode: 0o750 });
  fs.chmodSync(path.join(hooks, 'post-checkout'), 0o750);
  const options = { repoDir: repo.dir, cliPath, env: repo.env };
  const result = await installHooks(options);
  t.deepEqual(result.installed.map((r) => [r.hook, r.chained]), [['post-commit', false], ['post-checkout', true]]);
  t.is(fs.readFileSync(path.join(hooks, 'post-checkout.pre-flowforge'), 'utf8'), original);
  t.deepEqual((await installHooks(options)).installed.map((r) => r.chained), [false, true]); // no double chaining
  t.is(fs.readFileSync(path.join(hooks, 'post-checkout.pre-flowforge'), 'utf8'), original);

  const head = repo.git(['rev-parse', 'HEAD']);
  // post-checkout's failure makes git checkout fail (git exits 1), exactly as before install.
  const error = t.throws(() => repo.git(['checkout', '-q', '-b', 'topic'])) as Error & { status: number };
  t.is(error.status, 1);
  t.is(fs.readFileSync(origLog, 'utf8'), `orig ${head} ${head} 1\n`);
  t.deepEqual(calls(), [`aggregate --source=git-checkout --prev=${head} --new=${head} --flag=1 --hook`]);

  const removed = await uninstallHooks(options);
  t.deepEqual(removed.removed.map((r) => r.action), ['removed', 'restored']);
  t.is(fs.readFileSync(path.join(hooks, 'post-checkout'), 'utf8'), original);
  t.is(fs.statSync(path.join(hooks, 'post-checkout')).mode & 0o777, 0o750);
  t.false(fs.existsSync(path.join(hooks, 'post-checkout.pre-flowforge')));
});

test('plain repository: a foreign hook next to a leftover .pre-flowforge is not overwritten', async (t) => {
  const repo = withGitRepo(t);
  const { cliPath } = fakeCli(repo);
  const hooks = path.join(repo.dir, '.git', 'hooks');
  fs.writeFileSync(path.join(hooks, 'post-commit'), '#!/bin/sh\necho new\n', { mode: 0o755 });
  fs.writeFileSync(path.join(hooks, 'post-commit.pre-flowforge'), '#!/bin/sh\necho old\n', { mode: 0o755 });
  await t.throwsAsync(installHooks({ repoDir: repo.dir, cliPath, env: repo.env }), { instanceOf: UsageError });
  t.is(fs.readFileSync(path.join(hooks, 'post-commit'), 'utf8'), '#!/bin/sh\necho new\n');
  await t.throwsAsync(installHooks({ repoDir: repo.dir, cliPath: 'relative.js', env: repo.env }), { instanceOf: UsageError });
});

test('husky repository: our line goes into .husky/<hook>, runs through husky, and comes out again', async (t) => {
  const repo = withGitRepo(t);
  repo.commit('first', { 'a.txt': 'a\n' });
  const huskyBin = path.join(path.dirname(createRequire(path.join(PROJECT_ROOT, 'package.json')).resolve('husky')), 'bin.js');
  execFileSync(process.execPath, [huskyBin], { cwd: repo.dir, env: repo.env });
  t.is(repo.git(['config', 'core.hooksPath']), '.husky/_');
  const { cliPath, calls } = fakeCli(repo);
  const huskyDir = path.join(repo.dir, '.husky');
  const userHook = '#!/bin/sh\necho "user post-commit" >/dev/null'; // no final newline
  fs.writeFileSync(path.join(huskyDir, 'post-commit'), userHook);
  const options = { repoDir: repo.dir, cliPath, env: repo.env };
  const result = await installHooks(options);
  t.deepEqual(result.installed, [
    { hook: 'post-commit', file: path.join(huskyDir, 'post-commit'), chained: false, via: 'husky' },
    { hook: 'post-checkout', file: path.join(huskyDir, 'post-checkout'), chained: false, via: 'husky' },
  ]);
  const commitHook = fs.readFileSync(path.join(huskyDir, 'post-commit'), 'utf8');
  // Right after the shebang, before the user's commands (husky runs the file with sh -e).
  t.is(commitHook, `#!/bin/sh\n${hookCommand('post-commit', process.execPath, cliPath)}\necho "user post-commit" >/dev/null`);
  t.is(fs.readFileSync(path.join(huskyDir, 'post-checkout'), 'utf8'), `${hookCommand('post-checkout', process.execPath, cliPath)}\n`);
  await installHooks(options);
  t.is(fs.readFileSync(path.join(huskyDir, 'post-commit'), 'utf8'), commitHook);

  const sha = repo.commit('second', { 'b.txt': 'b\n' });
  repo.git(['checkout', '-q', '-b', 'topic']);
  t.deepEqual(calls(), ['aggregate --source=git-commit --hook', `aggregate --source=git-checkout --prev=${sha} --new=${sha} --flag=1 --hook`]);

  t.deepEqual((await uninstallHooks(options)).removed.map((r) => r.action), ['edited', 'removed']);
  t.is(fs.readFileSync(path.join(huskyDir, 'post-commit'), 'utf8'), userHook);
  t.false(fs.existsSync(path.join(huskyDir, 'post-checkout')));
});

/** `git init`-ed repo with husky 9 set up by husky's own `bin.js` (core.hooksPath = .husky/_). */
function withHusky9(t: Parameters<typeof withGitRepo>[0]): GitRepo {
  const repo = withGitRepo(t);
  repo.commit('first', { 'a.txt': 'a\n' });
  const huskyBin = path.join(path.dirname(createRequire(path.join(PROJECT_ROOT, 'package.json')).resolve('husky')), 'bin.js');
  execFileSync(process.execPath, [huskyBin], { cwd: repo.dir, env: repo.env });
  return repo;
}

test('husky: our line runs even when the user\'s file ends in `exit 0` or a command fails under sh -e; the user\'s commands still run', async (t) => {
  const repo = withHusky9(t);
  const { cliPath, calls } = fakeCli(repo);
  const huskyDir = path.join(repo.dir, '.husky');
  const userLog = path.join(repo.root, 'user.log');
  // The tester's file: an `exit 0` stopped the file before a line appended at its end.
  const userCommit = `echo "user post-commit" >> '${userLog}'\nexit 0\n`;
  // A command that fails stops husky's `sh -e` before anything after it.
  const userCheckout = `#!/usr/bin/env sh\n# check for TODOs\necho "user post-checkout $*" >> '${userLog}'\ngrep -q TODO a.txt\necho "not reached" >> '${userLog}'\n`;
  fs.writeFileSync(path.join(huskyDir, 'post-commit'), userCommit, { mode: 0o744 });
  fs.chmodSync(path.join(huskyDir, 'post-commit'), 0o744);
  fs.writeFileSync(path.join(huskyDir, 'post-checkout'), userCheckout);
  const options = { repoDir: repo.dir, cliPath, env: repo.env };
  await installHooks(options);
  const ourCommit = hookCommand('post-commit', process.execPath, cliPath);
  const ourCheckout = hookCommand('post-checkout', process.execPath, cliPath);
  t.is(fs.readFileSync(path.join(huskyDir, 'post-commit'), 'utf8'), `${ourCommit}\n${userCommit}`);
  t.is(fs.readFileSync(path.join(huskyDir, 'post-checkout'), 'utf8'), `#!/usr/bin/env sh\n${ourCheckout}\n# check for TODOs\necho "user post-checkout $*" >> '${userLog}'\ngrep -q TODO a.txt\necho "not reached" >> '${userLog}'\n`);
  t.is(fs.statSync(path.join(huskyDir, 'post-commit')).mode & 0o777, 0o744);

  const shas = [1, 2, 3].map((i) => repo.commit(`c${i}`, { 'f.txt': `${i}\n` }));
  // The user's post-checkout still fails as before install: husky reports it, git exits 1.
  const error = t.throws(() => repo.git(['checkout', '-q', '-b', 'topic'])) as Error & { status: number };
  t.is(error.status, 1);
  t.is(calls().length, 4);
  t.deepEqual(calls(), [
    'aggregate --source=git-commit --hook',
    'aggregate --source=git-commit --hook',
    'aggregate --source=git-commit --hook',
    `aggregate --source=git-checkout --prev=${shas[2]} --new=${shas[2]} --flag=1 --hook`,
  ]);
  t.is(fs.readFileSync(userLog, 'utf8'), `user post-commit\nuser post-commit\nuser post-commit\nuser post-checkout ${shas[2]} ${shas[2]} 1\n`);

  t.deepEqual((await uninstallHooks(options)).removed.map((r) => r.action), ['edited', 'edited']);
  t.is(fs.readFileSync(path.join(huskyDir, 'post-commit'), 'utf8'), userCommit);
  t.is(fs.readFileSync(path.join(huskyDir, 'post-checkout'), 'utf8'), userCheckout);
  t.is(fs.statSync(path.join(huskyDir, 'post-commit')).mode & 0o777, 0o744);
});

test('husky: re-installing over an earlier install (our line appended at the end) moves the line to the top, once', async (t) => {
  const repo = withHusky9(t);
  const { cliPath, calls } = fakeCli(repo);
  const huskyDir = path.join(repo.dir, '.husky');
  const ourCommit = hookCommand('post-commit', process.execPath, cliPath);
  const ourCheckout = hookCommand('post-checkout', process.execPath, cliPath);
  const userCommit = 'echo "user post-commit" >/dev/null\nexit 0\n';
  const userCheckout = '#!/bin/sh\nexit 0'; // no final newline: the old install added one and marked it
  // Exactly what the earlier version wrote.
  fs.writeFileSync(path.join(huskyDir, 'post-commit'), `${userCommit}${ourCommit}\n`);
  fs.writeFileSync(path.join(huskyDir, 'post-checkout'), `${userCheckout}\n${ourCheckout} (newline added)\n`);
  repo.commit('second', { 'b.txt': 'b\n' });
  t.deepEqual(calls(), []); // the bug: the old line never ran

  await installHooks({ repoDir: repo.dir, cliPath, env: repo.env });
  t.is(fs.readFileSync(path.join(huskyDir, 'post-commit'), 'utf8'), `${ourCommit}\n${userCommit}`);
  t.is(fs.readFileSync(path.join(huskyDir, 'post-checkout'), 'utf8'), `#!/bin/sh\n${ourCheckout}\nexit 0`);
  repo.commit('third', { 'c.txt': 'c\n' });
  t.deepEqual(calls(), ['aggregate --source=git-commit --hook']);

  await uninstallHooks({ repoDir: repo.dir, env: repo.env });
  t.is(fs.readFileSync(path.join(huskyDir, 'post-commit'), 'utf8'), userCommit);
  t.is(fs.readFileSync(path.join(huskyDir, 'post-checkout'), 'utf8'), userCheckout);
});

/** husky 8's `.husky/_/husky.sh` (v8.0.3, debug and messages left out): re-runs the hook file under `sh -e`, then exits. */
const HUSKY8_SH = `#!/usr/bin/env sh
if [ -z "$husky_skip_init" ]; then
  if [ "$HUSKY" = "0" ]; then
    exit 0
  fi
  readonly husky_skip_init=1
  export husky_skip_init
  sh -e "$0" "$@"
  exitCode="$?"
  exit $exitCode
fi
`;

test('husky 8: our line goes after the `. _/husky.sh` line (which re-runs the file), so it runs once per commit', async (t) => {
  const repo = withGitRepo(t);
  repo.commit('first', { 'a.txt': 'a\n' });
  const huskyDir = path.join(repo.dir, '.husky');
  fs.mkdirSync(path.join(huskyDir, '_'), { recursive: true });
  fs.writeFileSync(path.join(huskyDir, '_', 'husky.sh'), HUSKY8_SH);
  repo.git(['config', 'core.hooksPath', '.husky']);
  const userCommit = '#!/usr/bin/env sh\n. "$(dirname -- "$0")/_/husky.sh"\n\nff-test-missing-linter --check\n';
  fs.writeFileSync(path.join(huskyDir, 'post-commit'), userCommit, { mode: 0o755 });
  const { cliPath, calls } = fakeCli(repo);
  const result = await installHooks({ repoDir: repo.dir, cliPath, env: repo.env });
  t.deepEqual(result.installed.map((r) => [r.file, r.via]), [
    [path.join(huskyDir, 'post-commit'), 'husky'],
    [path.join(huskyDir, 'post-checkout'), 'husky'],
  ]);
  const ourCommit = hookCommand('post-commit', process.execPath, cliPath);
  t.is(fs.readFileSync(path.join(huskyDir, 'post-commit'), 'utf8'), `#!/usr/bin/env sh\n. "$(dirname -- "$0")/_/husky.sh"\n${ourCommit}\n\nff-test-missing-linter --check\n`);
  // A hook file we create gets husky 8's preamble, our line after it.
  t.is(fs.readFileSync(path.join(huskyDir, 'post-checkout'), 'utf8'), `#!/usr/bin/env sh\n. "$(dirname -- "$0")/_/husky.sh"\n${hookCommand('post-checkout', process.execPath, cliPath)}\n\n`);

  const sha = repo.commit('second', { 'b.txt': 'b\n' });
  repo.git(['checkout', '-q', '-b', 'topic']);
  t.deepEqual(calls(), ['aggregate --source=git-commit --hook', `aggregate --source=git-checkout --prev=${sha} --new=${sha} --flag=1 --hook`]);

  t.deepEqual((await uninstallHooks({ repoDir: repo.dir, env: repo.env })).removed.map((r) => r.action), ['edited', 'removed']);
  t.is(fs.readFileSync(path.join(huskyDir, 'post-commit'), 'utf8'), userCommit);
  t.false(fs.existsSync(path.join(huskyDir, 'post-checkout')));
});

test("this repository's own hooks are one-line calls, executable, in husky's hooks/ directory", (t) => {
  for (const [hook, args] of [
    ['post-commit', 'aggregate --source=git-commit --hook'],
    ['post-checkout', 'aggregate --source=git-checkout --prev="$1" --new="$2" --flag="$3" --hook'],
  ] as const) {
    const file = path.join(PROJECT_ROOT, 'hooks', hook);
    t.is(fs.readFileSync(file, 'utf8'), `sh src/bridge/provider-bridge.sh ${args} >/dev/null 2>&1 || true\n`);
    t.is(fs.statSync(file).mode & 0o111, 0o111);
  }
});
