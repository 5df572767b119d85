/**
 * Real git hooks installed with `provider-bridge hooks install`, fired by real git commands.
 */
import test from 'ava';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { execFileSync } from 'node:child_process';
import { createRequire } from 'node:module';
import { runCli } from '../helpers/cli.js';
import { withGitRepo, PROJECT_ROOT, type GitRepo } from '../helpers/git-repo.js';

interface StoredEntry {
  entryId: string;
  userId: string;
  action: string;
  timestamp: number;
  metadata: Record<string, any>;
}

const gitBinary = execFileSync('sh', ['-c', 'command -v git'], { encoding: 'utf8' }).trim();

function install(repo: GitRepo): void {
  const r = runCli(['hooks', 'install', `--repo=${repo.dir}`], { cwd: repo.root, env: repo.env });
  if (r.code !== 0) throw new Error(`hooks install failed: ${r.stdout} ${r.stderr}`);
}

/** Every entry in the data root after a force flush (batch files), in batch order. */
function stored(dataRootParent: string, env: NodeJS.ProcessEnv): StoredEntry[] {
  const force = runCli(['aggregate-force'], { cwd: dataRootParent, env });
  if (force.code !== 0) throw new Error(force.stdout + force.stderr);
  const dir = path.join(dataRootParent, '.flowforge/aggregated');
  return fs
    .readdirSync(dir)
    .filter((n) => n.startsWith('batch_'))
    .sort()
    .flatMap((n) => JSON.parse(fs.readFileSync(path.join(dir, n), 'utf8')).entries);
}

test('post-commit records the commit once even when the hook fires twice; a file checkout records nothing', async (t) => {
  const repo = withGitRepo(t);
  install(repo);
  fs.writeFileSync(path.join(repo.dir, '.gitignore'), '.flowforge/\n');
  const sha = repo.commit('first', { 'a.txt': 'one\ntwo\n' }, { date: '1750000000 +0200' });
  // Fire the installed hook again by hand, as a retried hook would.
  const hook = repo.git(['rev-parse', '--git-path', 'hooks/post-commit']);
  const again = runCli(['aggregate', '--source=git-commit'], { cwd: repo.dir, env: repo.env });
  t.like(again.json.result, { accepted: 0, duplicates: 1 });
  t.true(fs.existsSync(path.resolve(repo.dir, hook)));
  fs.writeFileSync(path.join(repo.dir, 'a.txt'), 'changed\n');
  repo.git(['checkout', '--', 'a.txt']); // post-checkout with flag 0
  const entries = stored(repo.dir, repo.env);
  t.deepEqual(entries, [
    {
      entryId: `commit:${sha}`,
      userId: 'Test User',
      action: 'commit',
      timestamp: 1_750_000_000_000,
      metadata: { sha, branch: 'main', filesChanged: 2, insertions: 3, deletions: 0, parents: [], tz: '+0200' },
    },
  ]);
});

test('detached HEAD: branch is null in the commit and the checkout entry, never "HEAD"', async (t) => {
  const repo = withGitRepo(t);
  fs.writeFileSync(path.join(repo.dir, '.gitignore'), '.flowforge/\n');
  const base = repo.commit('base', { 'a.txt': 'a\n' });
  install(repo);
  repo.git(['checkout', '-q', '--detach', base]);
  const sha = repo.commit('detached work', { 'b.txt': 'b\n' }, { date: '1750000100 +0000' });
  const entries = stored(repo.dir, repo.env);
  const checkout = entries.find((e) => e.action === 'checkout');
  t.like(checkout?.metadata, { from: base, to: base, branch: null });
  const commit = entries.find((e) => e.action === 'commit');
  t.is(commit?.entryId, `commit:${sha}`);
  t.is(commit?.metadata.branch, null);
  t.deepEqual(commit?.metadata.parents, [base]);
});

test('unborn HEAD: the post-commit source adds nothing and exits 0', (t) => {
  const repo = withGitRepo(t);
  const r = runCli(['aggregate', '--source=git-commit'], { cwd: repo.dir, env: repo.env });
  t.is(r.code, 0);
  t.like(r.json.result, { accepted: 0, duplicates: 0, pending: 0 });
});

test('linked worktree: the hook records the worktree branch into the worktree\'s data root', (t) => {
  const repo = withGitRepo(t);
  fs.writeFileSync(path.join(repo.dir, '.gitignore'), '.flowforge/\n');
  repo.commit('base', { 'a.txt': 'a\n' });
  install(repo);
  const wt = path.join(repo.root, 'wt');
  repo.git(['worktree', 'add', '-q', '-b', 'feature', wt]);
  fs.writeFileSync(path.join(wt, 'f.txt'), 'f\n');
  repo.git(['add', 'f.txt'], { cwd: wt });
  repo.git(['commit', '-q', '-m', 'in worktree'], { cwd: wt, env: { ...repo.env, GIT_AUTHOR_DATE: '1750000200 +0000' } });
  const sha = repo.git(['rev-parse', 'HEAD'], { cwd: wt });
  const commits = stored(wt, repo.env).filter((e) => e.action === 'commit');
  t.deepEqual(commits.map((e) => [e.entryId, e.metadata.branch]), [[`commit:${sha}`, 'feature']]);
});

test('hooks work with GIT_DIR and GIT_INDEX_FILE exported and with a PATH that has no node on it', (t) => {
  const repo = withGitRepo(t);
  fs.writeFileSync(path.join(repo.dir, '.gitignore'), '.flowforge/\n');
  install(repo);
  fs.writeFileSync(path.join(repo.dir, 'x.txt'), 'x\n');
  const gitEnv = { ...repo.env, GIT_DIR: path.join(repo.dir, '.git'), GIT_INDEX_FILE: path.join(repo.dir, '.git/index'), GIT_WORK_TREE: repo.dir };
  repo.git(['add', '-A'], { env: gitEnv });
  repo.git(['commit', '-q', '-m', 'env'], { env: { ...gitEnv, GIT_AUTHOR_DATE: '1750000300 +0000' } });
  const first = repo.git(['rev-parse', 'HEAD']);
  fs.writeFileSync(path.join(repo.dir, 'y.txt'), 'y\n');
  repo.git(['add', '-A']);
  // A GUI client's minimal PATH: the hook must not need node (or anything else) on PATH.
  execFileSync(gitBinary, ['commit', '-q', '-m', 'minimal path'], { cwd: repo.dir, env: { ...repo.env, PATH: '/nonexistent', GIT_AUTHOR_DATE: '1750000400 +0000' } });
  const second = repo.git(['rev-parse', 'HEAD']);
  const ids = stored(repo.dir, repo.env).map((e) => e.entryId);
  t.deepEqual(ids, [`commit:${first}`, `commit:${second}`]);
});

test('a hook never fails git: with a data root that cannot be created, git commit still exits 0', (t) => {
  const repo = withGitRepo(t);
  install(repo);
  fs.writeFileSync(path.join(repo.dir, '.flowforge'), 'a file where the data root should be');
  fs.writeFileSync(path.join(repo.dir, 'z.txt'), 'z\n');
  repo.git(['add', 'z.txt']);
  t.notThrows(() => repo.git(['commit', '-q', '-m', 'still works']));
  t.is(repo.git(['log', '--format=%s', '-1']), 'still works');
});

test('a commit dated in the future or before 2000 is skipped by sha, and the rest of a git-log import goes in', (t) => {
  const repo = withGitRepo(t);
  fs.writeFileSync(path.join(repo.dir, '.gitignore'), '.flowforge/\n');
  const old = repo.commit('from an old system', { 'a.txt': 'a\n' }, { date: '883612800 +0000' }); // 1998-01-01
  const ok1 = repo.commit('normal', { 'b.txt': 'b\n' }, { date: '1750000000 +0000' });
  const future = repo.commit('wrong clock', { 'c.txt': 'c\n' }, { date: `${Math.floor(Date.now() / 1000) + 86_400 * 200} +0000` });
  const ok2 = repo.commit('normal again', { 'd.txt': 'd\n' }, { date: '1750000100 +0000' });
  const r = runCli(['aggregate', '--source=git-log'], { cwd: repo.dir, env: repo.env });
  t.is(r.code, 0);
  t.is(r.json.result.accepted, 2);
  t.deepEqual(
    r.json.result.skipped.map((s: { entryId: string; reason: string }) => [s.entryId, s.reason.split(' (')[0]]),
    [
      [`commit:${old}`, 'author date before 2000-01-01'],
      [`commit:${future}`, 'author date more than 300000 ms in the future'],
    ],
  );
  const ids = stored(repo.dir, repo.env).map((e) => e.entryId);
  t.deepEqual(ids.sort(), [`commit:${ok1}`, `commit:${ok2}`].sort());
});

test('a hook that fails on a bad config still leaves a data root that git ignores (only the log is written)', (t) => {
  const repo = withGitRepo(t);
  install(repo);
  fs.writeFileSync(path.join(repo.dir, 'flowforge.config.json'), '{"batchSize": 0}\n');
  repo.commit('with a bad config', { 'a.txt': 'a\n' });
  t.true(fs.existsSync(path.join(repo.dir, '.flowforge/logs/aggregation.log')));
  t.is(fs.readFileSync(path.join(repo.dir, '.flowforge/.gitignore'), 'utf8'), '# FlowForge Aggregation data: never committed\n*\n');
  t.is(repo.git(['status', '--porcelain', '--untracked-files=all']), '');
});

test('husky: commits are recorded when the user\'s .husky/post-commit ends in `exit 0` (the tester\'s repro)', (t) => {
  const repo = withGitRepo(t);
  fs.writeFileSync(path.join(repo.dir, '.gitignore'), '.flowforge/\n');
  fs.writeFileSync(path.join(repo.dir, 'package.json'), '{"name":"x","version":"1.0.0"}\n');
  const huskyBin = path.join(path.dirname(createRequire(path.join(PROJECT_ROOT, 'package.json')).resolve('husky')), 'bin.js');
  execFileSync(process.execPath, [huskyBin, 'init'], { cwd: repo.dir, env: repo.env, stdio: 'ignore' });
  fs.writeFileSync(path.join(repo.dir, '.husky/pre-commit'), 'true\n');
  fs.writeFileSync(path.join(repo.dir, '.husky/post-commit'), 'echo "husky user post-commit"\nexit 0\n');
  repo.commit('init', {}, { date: '1750000000 +0000' });
  const r = runCli(['hooks', 'install', `--repo=${repo.dir}`], { cwd: repo.root, env: repo.env });
  t.is(r.code, 0);
  t.deepEqual(r.json.result.installed.map((i: { via: string }) => i.via), ['husky', 'husky']);
  const shas = [1, 2, 3].map((i) => repo.commit(`c${i}`, { f: `${i}\n` }, { date: `${1750000000 + i * 60} +0000` }));
  t.like(runCli(['aggregate-status'], { cwd: repo.dir, env: repo.env }).json.result, { pending: 3 });
  t.deepEqual(
    stored(repo.dir, repo.env).map((e) => [e.entryId, e.timestamp]),
    shas.map((sha, i) => [`commit:${sha}`, (1750000000 + (i + 1) * 60) * 1000]),
  );
});

test('amend: the hook records the original and each amended commit (same author time); git-log into another data root counts only reachable commits', (t) => {
  const repo = withGitRepo(t);
  fs.writeFileSync(path.join(repo.dir, '.gitignore'), '.flowforge/\n');
  install(repo);
  const first = repo.commit('work', { 'a.txt': 'a\n' }, { date: '1750000000 +0000' });
  // Amended an hour and two hours later (GIT_AUTHOR_DATE/GIT_COMMITTER_DATE of the amend).
  const amended1 = repo.commit('work', { 'a.txt': 'a2\n' }, { args: ['--amend'], date: '1750003600 +0000' });
  const amended2 = repo.commit('work', { 'a.txt': 'a3\n' }, { args: ['--amend'], date: '1750007200 +0000' });
  t.is(repo.git(['rev-list', '--all']), amended2);
  // git commit --amend keeps the author (and author date) of the commit it replaces (only the
  // committer date is new), so all three entries carry the first commit's time.
  t.deepEqual(
    stored(repo.dir, repo.env).map((e) => [e.entryId, e.timestamp]),
    [first, amended1, amended2].map((sha) => [`commit:${sha}`, 1_750_000_000_000]),
  );
  const report = runCli(['aggregate-report', '--by=action'], { cwd: repo.dir, env: repo.env });
  t.deepEqual(report.json.result.totals, { entries: 3, commits: 3, trackedMs: 0 });
  // The README's recipe for reachable commits only: import the history into a separate data root.
  const reachable = path.join(repo.root, 'reachable');
  t.is(runCli(['aggregate', '--source=git-log', `--data-path=${reachable}`], { cwd: repo.dir, env: repo.env }).code, 0);
  const only = runCli(['aggregate-report', '--by=action', `--data-path=${reachable}`], { cwd: repo.dir, env: repo.env });
  t.deepEqual(only.json.result.totals, { entries: 1, commits: 1, trackedMs: 0 });
});
