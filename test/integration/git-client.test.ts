import test from 'ava';
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { createGitClient, takeWarmClient, warmHeadCommit } from '../../src/core/git-client.js';
import { GitError } from '../../src/core/errors.js';
import { entriesFromGitCommit } from '../../plugins/aggregation/sources/git-commit.js';
import { entriesFromGitLog } from '../../plugins/aggregation/sources/git-log.js';
import { entriesFromGitCheckout } from '../../plugins/aggregation/sources/git-checkout.js';
import { withGitRepo } from '../helpers/git-repo.js';

const gitClientModule = pathToFileURL(path.join(path.dirname(fileURLToPath(import.meta.url)), '../../src/core/git-client.js')).href;

test('headCommit: a normal commit gives exact sha, author, author time, offset, branch and numstat', async (t) => {
  const repo = withGitRepo(t);
  const first = repo.commit('first', { 'a.txt': 'one\ntwo\nthree\n', 'dir/b.txt': 'x\ny\n' }, { date: '1700000000 +0100' });
  const git = await createGitClient(repo.dir, repo.env, { cwd: repo.dir });
  t.deepEqual(await git.headCommit(), {
    sha: first,
    parents: [],
    author: 'Test User',
    authorEmail: 'test@example.com',
    authorTime: 1_700_000_000_000,
    authorTz: '+0100',
    branch: 'main',
    filesChanged: 2,
    insertions: 5,
    deletions: 0,
  });
  const second = repo.commit('second', { 'a.txt': 'one\nTWO\nthree\n' }, { date: '1700003600 -0530', remove: ['dir/b.txt'], authorName: 'Ana' });
  const facts = await git.headCommit();
  t.is(facts?.sha, second);
  t.deepEqual(facts?.parents, [first]);
  t.is(facts?.author, 'Ana');
  t.is(facts?.authorTime, 1_700_003_600_000);
  t.is(facts?.authorTz, '-0530');
  t.deepEqual([facts?.filesChanged, facts?.insertions, facts?.deletions], [2, 1, 3]);
  t.deepEqual(await entriesFromGitCommit(git), [
    {
      entryId: `commit:${second}`,
      userId: 'Ana',
      action: 'commit',
      timestamp: 1_700_003_600_000,
      metadata: { sha: second, branch: 'main', filesChanged: 2, insertions: 1, deletions: 3, parents: [first], tz: '-0530' },
    },
  ]);
});

test('headCommit: a merge commit has two parents and numstat 0/0/0', async (t) => {
  const repo = withGitRepo(t);
  repo.commit('base', { 'a.txt': 'a\n' });
  repo.git(['checkout', '-q', '-b', 'feature']);
  const feature = repo.commit('feature', { 'f.txt': 'f\nf\n' }, { date: '1700000100 +0000' });
  repo.git(['checkout', '-q', 'main']);
  const mainTip = repo.commit('main work', { 'm.txt': 'm\n' }, { date: '1700000200 +0000' });
  repo.git(['merge', '-q', '--no-ff', '-m', 'merge feature', 'feature'], {
    env: { ...repo.env, GIT_AUTHOR_DATE: '1700000300 +0000', GIT_COMMITTER_DATE: '1700000300 +0000' },
  });
  const git = await createGitClient(repo.dir, repo.env, { cwd: repo.dir });
  const facts = await git.headCommit();
  t.deepEqual(facts?.parents, [mainTip, feature]);
  t.deepEqual([facts?.filesChanged, facts?.insertions, facts?.deletions], [0, 0, 0]);
  t.is(facts?.branch, 'main');
  // git itself agrees: no numstat for a merge by default (the dataset README's rule).
  t.is(repo.git(['log', '-1', '--format=', '--numstat', 'HEAD']), '');
});

test('headCommit and currentBranch: detached HEAD gives branch null, never "HEAD"', async (t) => {
  const repo = withGitRepo(t);
  const sha = repo.commit('first', { 'a.txt': 'a\n' });
  repo.git(['tag', 'v1']);
  repo.git(['checkout', '-q', '--detach']);
  const git = await createGitClient(repo.dir, repo.env, { cwd: repo.dir });
  const facts = await git.headCommit();
  t.is(facts?.sha, sha);
  t.is(facts?.branch, null);
  t.is(await git.currentBranch(), null);
});

test('headCommit: unborn HEAD gives undefined; the git-commit source gives []', async (t) => {
  const repo = withGitRepo(t);
  const git = await createGitClient(repo.dir, repo.env, { cwd: repo.dir });
  t.is(await git.headCommit(), undefined);
  t.deepEqual(await entriesFromGitCommit(git), []);
  t.is(await git.currentBranch(), 'main');
  t.deepEqual(await git.log({}), []);
  t.deepEqual(await git.log({ all: false }), []);
});

test('outside a repository every fact throws GitError', async (t) => {
  const repo = withGitRepo(t, { init: false });
  const git = await createGitClient(repo.dir, { ...repo.env, GIT_CEILING_DIRECTORIES: repo.root }, { cwd: repo.dir });
  const error = await t.throwsAsync(git.headCommit(), { instanceOf: GitError });
  t.regex(error?.message ?? '', /not a git repository/);
  await t.throwsAsync(git.topLevel(), { instanceOf: GitError });
  await t.throwsAsync(createGitClient(path.join(repo.root, 'missing'), repo.env), { instanceOf: GitError });
});

test('binary files count as changed files with 0 lines', async (t) => {
  const repo = withGitRepo(t);
  repo.commit('bin', { 'image.bin': Buffer.from([0, 1, 2, 0, 255, 0, 10]), 'a.txt': 'a\nb\n' });
  const git = await createGitClient(repo.dir, repo.env, { cwd: repo.dir });
  const facts = await git.headCommit();
  t.deepEqual([facts?.filesChanged, facts?.insertions, facts?.deletions], [2, 2, 0]);
});

test('linked worktree: top level, branch and the shared hooks directory are right', async (t) => {
  const repo = withGitRepo(t);
  repo.commit('first', { 'a.txt': 'a\n' });
  const wt = path.join(repo.root, 'wt');
  repo.git(['worktree', 'add', '-q', '-b', 'feat', wt]);
  t.true(fs.statSync(path.join(wt, '.git')).isFile());
  const sha = repo.commit('x', {}, { args: ['--allow-empty'] });
  const git = await createGitClient(path.join(wt), repo.env, { cwd: wt });
  t.is(await git.topLevel(), wt);
  t.is(await git.currentBranch(), 'feat');
  t.is(await git.hooksDir(), path.join(repo.dir, '.git', 'hooks'));
  const facts = await git.headCommit();
  t.is(facts?.branch, 'feat');
  t.not(facts?.sha, sha);
});

test('hooksDir honours a relative core.hooksPath, also from a subdirectory', async (t) => {
  const repo = withGitRepo(t);
  repo.commit('first', { 'sub/a.txt': 'a\n' });
  repo.git(['config', 'core.hooksPath', '.husky/_']);
  const git = await createGitClient(path.join(repo.dir, 'sub'), repo.env, { cwd: path.join(repo.dir, 'sub') });
  t.is(await git.hooksDir(), path.join(repo.dir, '.husky', '_'));
  t.is(await git.topLevel(), repo.dir);
  t.is(await git.configGet('core.hooksPath'), '.husky/_');
  t.is(await git.configGet('no.such-key'), undefined);
});

test('GIT_DIR and GIT_INDEX_FILE from the environment are honoured, and dropped for an explicit --repo', async (t) => {
  const a = withGitRepo(t);
  const b = withGitRepo(t);
  const shaA = a.commit('in a', { 'a.txt': 'a\n' });
  const shaB = b.commit('in b', { 'b.txt': 'b\n' });
  // Relative values, as git exports them to hooks, plus guarded variables simple-git would reject.
  const hookEnv = {
    ...a.env,
    GIT_DIR: path.relative(a.dir, path.join(b.dir, '.git')),
    GIT_INDEX_FILE: path.relative(a.dir, path.join(b.dir, '.git', 'index')),
    GIT_EXEC_PATH: '/nonexistent',
    GIT_EDITOR: 'vi',
    PAGER: 'less',
    GIT_PREFIX: '',
  };
  const inHook = await createGitClient(a.dir, hookEnv, { cwd: a.dir });
  t.is((await inHook.headCommit())?.sha, shaB);
  const explicitRepo = await createGitClient(a.dir, hookEnv, { cwd: b.dir });
  t.is((await explicitRepo.headCommit())?.sha, shaA);
});

test('a real post-commit hook sees the commit through createGitClient(cwd, process.env)', async (t) => {
  const repo = withGitRepo(t);
  repo.commit('first', { 'a.txt': 'a\n' });
  const out = path.join(repo.root, 'hook-out.json');
  const script = path.join(repo.root, 'probe.mjs');
  fs.writeFileSync(
    script,
    `import { createGitClient } from ${JSON.stringify(gitClientModule)};
import { writeFileSync } from 'node:fs';
const git = await createGitClient(process.cwd(), process.env);
const facts = await git.headCommit();
writeFileSync(${JSON.stringify(out)}, JSON.stringify({ facts, gitDir: process.env.GIT_DIR ?? null, index: process.env.GIT_INDEX_FILE ?? null }));
`,
  );
  fs.writeFileSync(path.join(repo.dir, '.git', 'hooks', 'post-commit'), `#!/bin/sh\n"${process.execPath}" "${script}"\n`, { mode: 0o755 });
  fs.writeFileSync(path.join(repo.dir, '.git', 'hooks', 'post-checkout'), `#!/bin/sh\n"${process.execPath}" "${script}"\n`, { mode: 0o755 });
  const sha = repo.commit('second', { 'b.txt': 'b\nc\n' }, { date: '1700000500 +0200' });
  const seen = JSON.parse(fs.readFileSync(out, 'utf8'));
  t.is(seen.facts.sha, sha);
  t.is(seen.facts.branch, 'main');
  t.is(seen.facts.authorTime, 1_700_000_500_000);
  t.deepEqual([seen.facts.filesChanged, seen.facts.insertions], [1, 2]);
  // Same from a linked worktree, where git exports GIT_DIR pointing into .git/worktrees/<name>.
  fs.rmSync(out);
  const wt = path.join(repo.root, 'wt');
  repo.git(['worktree', 'add', '-q', '-b', 'feat', wt]);
  const wtSha = repo.commit('on main', {}, { args: ['--allow-empty'] });
  execFileSync('git', ['commit', '-q', '--allow-empty', '-m', 'in worktree'], { cwd: wt, env: repo.env });
  const inWt = JSON.parse(fs.readFileSync(out, 'utf8'));
  t.is(inWt.facts.branch, 'feat');
  t.is(inWt.facts.sha, execFileSync('git', ['rev-parse', 'HEAD'], { cwd: wt, env: repo.env, encoding: 'utf8' }).trim());
  t.not(inWt.facts.sha, wtSha);
});

test('log: N commits across branches, parents before children, author-date bounds', async (t) => {
  const repo = withGitRepo(t);
  const base = 1_600_000_000;
  const shas: string[] = [];
  for (let i = 0; i < 25; i++) {
    shas.push(repo.commit(`c${i}`, { [`f${i % 5}.txt`]: `${i}\n`.repeat(i + 1) }, { date: `${base + i * 3600} +0000` }));
  }
  repo.git(['checkout', '-q', '-b', 'side', shas[10]!]);
  const side = repo.commit('side', { 'side.txt': 's\n' }, { date: `${base + 100 * 3600} +0000` });
  repo.git(['checkout', '-q', 'main']);
  repo.git(['merge', '-q', '--no-ff', '-m', 'merge side', 'side'], {
    env: { ...repo.env, GIT_AUTHOR_DATE: `${base + 101 * 3600} +0000`, GIT_COMMITTER_DATE: `${base + 101 * 3600} +0000` },
  });
  repo.git(['stash', 'list']); // no stash: refs/stash must not matter either way
  const git = await createGitClient(repo.dir, repo.env, { cwd: repo.dir });
  const all = await git.log({});
  t.is(all.length, 27);
  const index = new Map(all.map((c, i) => [c.sha, i]));
  for (const c of all) for (const p of c.parents) t.true(index.get(p)! < index.get(c.sha)!);
  t.is(all.filter((c) => c.parents.length === 2).length, 1);
  t.true(all.every((c) => c.branch === null));
  const c7 = all.find((c) => c.sha === shas[7]);
  t.deepEqual([c7?.filesChanged, c7?.insertions, c7?.deletions, c7?.authorTime], [1, 8, 3, (base + 7 * 3600) * 1000]);
  t.truthy(all.find((c) => c.sha === side));

  const entries = await entriesFromGitLog(git, {});
  t.is(entries.length, 27);
  t.is(entries[0]?.entryId, `commit:${shas[0]}`);
  t.is(entries[0]?.metadata.branch, null);
  t.is(entries[0]?.timestamp, base * 1000);

  const bounded = await entriesFromGitLog(git, { since: `@${base + 5 * 3600}`, until: `@${base + 9 * 3600}` });
  t.deepEqual(
    bounded.map((e) => e.entryId),
    shas.slice(5, 10).map((s) => `commit:${s}`),
  );
});

test('git-checkout source against a real repository: branch switch and detach', async (t) => {
  const repo = withGitRepo(t);
  const a = repo.commit('a', { 'a.txt': 'a\n' });
  repo.git(['checkout', '-q', '-b', 'topic']);
  const b = repo.commit('b', { 'b.txt': 'b\n' });
  const git = await createGitClient(repo.dir, repo.env, { cwd: repo.dir });
  t.deepEqual(await entriesFromGitCheckout({ prev: a, next: b, flag: '1' }, git, 1_700_000_000_123), [
    {
      entryId: `checkout:${a}:${b}:1700000000123`,
      userId: 'Test User',
      action: 'checkout',
      timestamp: 1_700_000_000_123,
      metadata: { from: a, to: b, branch: 'topic' },
    },
  ]);
  repo.git(['checkout', '-q', '--detach']);
  const [detached] = await entriesFromGitCheckout({ prev: b, next: b, flag: '1' }, git, 1_700_000_000_200);
  t.is(detached?.metadata.branch, null);
});

test('a warmed client is handed out once, its first headCommit the one started early; later calls ask git again', async (t) => {
  const repo = withGitRepo(t);
  const first = repo.commit('first', { 'a.txt': 'one\n' });
  await warmHeadCommit(repo.dir, repo.env, { cwd: repo.dir });
  const second = repo.commit('second', { 'a.txt': 'two\n' }); // after the early git log ran or started
  const warm = takeWarmClient(repo.dir);
  t.truthy(warm);
  t.is(takeWarmClient(repo.dir), undefined);
  const git = await warm!;
  t.true([first, second].includes((await git.headCommit())!.sha));
  t.is((await git.headCommit())!.sha, second);
});

test('warming a directory that is not a repository never throws; the error comes when the action asks', async (t) => {
  const dir = fs.mkdtempSync(path.join(fs.realpathSync(process.env.TMPDIR ?? '/tmp'), 'ff-nogit-'));
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  await t.notThrowsAsync(warmHeadCommit(dir, { PATH: process.env.PATH, GIT_CEILING_DIRECTORIES: path.dirname(dir) }, { cwd: dir }));
  const git = await takeWarmClient(dir)!;
  await t.throwsAsync(git.headCommit(), { instanceOf: GitError });
});
