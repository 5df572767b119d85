import test from 'ava';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { InputError, UsageError } from '../../src/core/errors.js';
import { createNodeFsPort } from '../../src/core/fs-port.js';
import type { CommitFacts, GitClient } from '../../src/core/git.js';
import { branchFromDecoration, parseLogOutput, sanitizeGitEnv } from '../../src/core/git-client.js';
import { commitEntry } from '../../plugins/aggregation/sources/git-commit.js';
import { entriesFromGitCheckout } from '../../plugins/aggregation/sources/git-checkout.js';
import { entriesFromSessions, parseSessionTime } from '../../plugins/aggregation/sources/sessions.js';
import { PROJECT_ROOT } from '../helpers/git-repo.js';

const A = 'a'.repeat(40);
const B = 'b'.repeat(40);

const facts: CommitFacts = {
  sha: A,
  parents: [B],
  author: 'Ana',
  authorEmail: 'ana@example.com',
  authorTime: 1_700_000_000_000,
  authorTz: '+0100',
  branch: 'main',
  filesChanged: 3,
  insertions: 10,
  deletions: 4,
};

function fakeGit(overrides: { branch?: string | null; config?: Record<string, string> } = {}): GitClient & { calls: string[] } {
  const calls: string[] = [];
  return {
    calls,
    topLevel: async () => '/repo',
    headCommit: async () => facts,
    currentBranch: async () => {
      calls.push('currentBranch');
      return overrides.branch === undefined ? 'main' : overrides.branch;
    },
    log: async () => [facts],
    hooksDir: async () => '/repo/.git/hooks',
    configGet: async (key) => {
      calls.push(`config ${key}`);
      return overrides.config?.[key];
    },
    run: async (args) => {
      throw new Error(`unexpected git ${args.join(' ')}`);
    },
    readObjects: async () => {
      throw new Error('unexpected git cat-file');
    },
  };
}

function tempDataRoot(t: import('ava').ExecutionContext): string {
  const dir = fs.realpathSync(fs.mkdtempSync(path.join(os.tmpdir(), 'ff-sessions-')));
  if (dir.startsWith(PROJECT_ROOT)) throw new Error('refusing to write inside the project');
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  return dir;
}

function writeTimeJson(root: string, user: string, content: unknown): void {
  fs.mkdirSync(path.join(root, 'user', user), { recursive: true });
  fs.writeFileSync(path.join(root, 'user', user, 'time.json'), typeof content === 'string' ? content : JSON.stringify(content));
}

test('commitEntry maps commit facts to the SPEC §4 entry', (t) => {
  t.deepEqual(commitEntry(facts), {
    entryId: `commit:${A}`,
    userId: 'Ana',
    action: 'commit',
    timestamp: 1_700_000_000_000,
    metadata: { sha: A, branch: 'main', filesChanged: 3, insertions: 10, deletions: 4, parents: [B], tz: '+0100' },
  });
  t.deepEqual(commitEntry({ ...facts, branch: null, parents: [] }).metadata.parents, []);
  t.is(commitEntry({ ...facts, branch: null }).metadata.branch, null);
});

test('branchFromDecoration: only "HEAD -> x" names a branch', (t) => {
  t.is(branchFromDecoration('HEAD -> main, tag: v1, origin/main'), 'main');
  t.is(branchFromDecoration('HEAD -> feature/x-1'), 'feature/x-1');
  t.is(branchFromDecoration('HEAD'), null);
  t.is(branchFromDecoration('HEAD, tag: v1, main'), null);
  t.is(branchFromDecoration(''), null);
});

test('parseLogOutput: numstat totals, binary "-" counts, merges forced to 0', (t) => {
  const rec = (sha: string, parents: string, deco: string, numstat: string) =>
    `\x1e${sha}\x1f${parents}\x1f\x1fnobody@example.com\x1f1700000000\x1f2023-11-14 23:13:20 +0530\x1f${deco}\x1f\n${numstat}`;
  const out =
    rec(A, '', 'HEAD -> main', '\n3\t1\ta.txt\n-\t-\timg.png\n0\t7\t"we\\tird"\n') +
    rec(B, `${A} ${'c'.repeat(40)}`, '', '\n5\t5\tx\n');
  const [first, merge] = parseLogOutput(out, true);
  t.deepEqual(first, {
    sha: A,
    parents: [],
    author: 'nobody@example.com',
    authorEmail: 'nobody@example.com',
    authorTime: 1_700_000_000_000,
    authorTz: '+0530',
    branch: 'main',
    filesChanged: 3,
    insertions: 3,
    deletions: 8,
  });
  t.deepEqual([merge?.parents.length, merge?.filesChanged, merge?.insertions, merge?.deletions, merge?.branch], [2, 0, 0, 0, null]);
  t.is(parseLogOutput(out, false)[0]?.branch, null);
});

test('sanitizeGitEnv keeps location variables (absolute), drops other guarded keys', (t) => {
  const env = { PATH: '/bin', HOME: '/h', GIT_DIR: '.git', GIT_INDEX_FILE: '.git/index', GIT_EDITOR: 'vi', EDITOR: 'vi', PAGER: 'less', GIT_EXEC_PATH: '/x', GIT_PREFIX: 'sub/' };
  t.deepEqual(sanitizeGitEnv(env, true, '/repo'), { PATH: '/bin', HOME: '/h', GIT_DIR: '/repo/.git', GIT_INDEX_FILE: '/repo/.git/index' });
  t.deepEqual(sanitizeGitEnv(env, false, '/repo'), { PATH: '/bin', HOME: '/h' });
});

test('git-checkout: flag 0 makes no entry and asks git nothing', async (t) => {
  const git = fakeGit();
  t.deepEqual(await entriesFromGitCheckout({ prev: A, next: B, flag: '0' }, git, 1_700_000_000_000), []);
  t.deepEqual(git.calls, []);
});

test('git-checkout: flag 1 makes one checkout entry with a deterministic id', async (t) => {
  const git = fakeGit({ branch: 'topic', config: { 'user.name': 'Ana' } });
  t.deepEqual(await entriesFromGitCheckout({ prev: A.toUpperCase(), next: B, flag: 1 }, git, 1_700_000_000_123), [
    {
      entryId: `checkout:${A}:${B}:1700000000123`,
      userId: 'Ana',
      action: 'checkout',
      timestamp: 1_700_000_000_123,
      metadata: { from: A, to: B, branch: 'topic' },
    },
  ]);
});

test('git-checkout: first checkout after clone, detached HEAD, userId fallbacks', async (t) => {
  const zeros = '0'.repeat(40);
  const [clone] = await entriesFromGitCheckout({ prev: zeros, next: B, flag: '1' }, fakeGit({ branch: null }), 1_700_000_000_000, { USER: 'shell-user' });
  t.deepEqual(clone?.metadata, { from: null, to: B, branch: null, initialClone: true });
  t.is(clone?.userId, 'shell-user');
  const [byEmail] = await entriesFromGitCheckout({ prev: A, next: B, flag: '1' }, fakeGit({ config: { 'user.email': 'e@x' } }), 1);
  t.is(byEmail?.userId, 'e@x');
  const [unknown] = await entriesFromGitCheckout({ prev: A, next: B, flag: '1' }, fakeGit(), 1, {});
  t.is(unknown?.userId, 'unknown');
  const sha256 = 'd'.repeat(64);
  const [long] = await entriesFromGitCheckout({ prev: sha256, next: sha256, flag: '1' }, fakeGit(), 1);
  t.is(long?.metadata.to, sha256);
});

test('git-checkout: bad sha or flag is a UsageError naming the option', async (t) => {
  const git = fakeGit();
  const badSha = await t.throwsAsync(entriesFromGitCheckout({ prev: 'HEAD', next: B, flag: '1' }, git, 1), { instanceOf: UsageError });
  t.is(badSha?.details[0]?.path, 'prev');
  const badNew = await t.throwsAsync(entriesFromGitCheckout({ prev: A, next: 'abc', flag: '1' }, git, 1), { instanceOf: UsageError });
  t.is(badNew?.details[0]?.path, 'new');
  const badFlag = await t.throwsAsync(entriesFromGitCheckout({ prev: A, next: B, flag: '2' }, git, 1), { instanceOf: UsageError });
  t.is(badFlag?.details[0]?.path, 'flag');
  await t.throwsAsync(entriesFromGitCheckout({ prev: undefined, next: B, flag: '1' }, git, 1), { instanceOf: UsageError });
  t.is(badSha?.exitCode, 2);
});

test('parseSessionTime: ISO with offset, epoch seconds, epoch milliseconds', (t) => {
  t.is(parseSessionTime('2023-11-14T22:13:20Z'), 1_700_000_000_000);
  t.is(parseSessionTime('2023-11-14T23:13:20.500+01:00'), 1_700_000_000_500);
  t.is(parseSessionTime('2023-11-14T23:13:20+0100'), 1_700_000_000_000);
  t.is(parseSessionTime(1_700_000_000), 1_700_000_000_000);
  t.is(parseSessionTime(1_700_000_000.25), 1_700_000_000_250);
  t.is(parseSessionTime(1_700_000_000_000), 1_700_000_000_000);
  t.is(parseSessionTime('1700000000'), 1_700_000_000_000);
  t.is(parseSessionTime(null), undefined);
  t.is(parseSessionTime(undefined), undefined);
  t.true(Number.isNaN(parseSessionTime('2023-11-14 22:13:20')));
  t.true(Number.isNaN(parseSessionTime('yesterday')));
  t.true(Number.isNaN(parseSessionTime({})));
});

test('sessions: every variant of the FlowForge v2.0 file becomes the expected entries', (t) => {
  const root = tempDataRoot(t);
  writeTimeJson(root, 'alice', {
    version: '2.0',
    sessions: [
      { id: 's1', taskId: 214, startTime: '2023-11-14T22:13:20Z', endTime: '2023-11-14T23:13:20Z', duration: 1 },
      { sessionId: 's2', task: 'T-9', start: 1_700_000_000, end: 1_700_000_090 },
      { id: 's3', startTime: 1_700_000_000_000, endTime: 1_700_000_001_500 },
      { id: 's4', endTime: '2023-11-14T23:13:20Z', duration: 1800 },
      { id: 'running', startTime: '2023-11-14T22:13:20Z', endTime: null },
      { id: 'running2', startTime: '2023-11-14T22:13:20Z' },
      { startTime: 1_700_000_000, endTime: 1_700_000_060, user: 'alice-alias' },
    ],
  });
  writeTimeJson(root, 'bob', {
    userId: 'bob@example.com',
    timeTracking: { sessions: [{ id: 7, startTime: '2023-11-14T23:13:20+01:00', endTime: '2023-11-15T00:13:20+01:00' }] },
  });
  fs.mkdirSync(path.join(root, 'user', 'carol')); // no time.json: skipped
  const entries = entriesFromSessions(root, createNodeFsPort());
  t.deepEqual(entries, [
    { entryId: 'session:alice:s1:3600000', userId: 'alice', action: 'time-tracking', timestamp: 1_700_000_000_000, metadata: { sessionId: 's1', taskId: '214', duration: 3_600_000 } },
    { entryId: 'session:alice:s2:90000', userId: 'alice', action: 'time-tracking', timestamp: 1_700_000_000_000, metadata: { sessionId: 's2', taskId: 'T-9', duration: 90_000 } },
    { entryId: 'session:alice:s3:1500', userId: 'alice', action: 'time-tracking', timestamp: 1_700_000_000_000, metadata: { sessionId: 's3', duration: 1_500 } },
    { entryId: 'session:alice:s4:1800000', userId: 'alice', action: 'time-tracking', timestamp: 1_700_001_800_000, metadata: { sessionId: 's4', duration: 1_800_000 } },
    { entryId: 'session:alice:start-1700000000000:60000', userId: 'alice-alias', action: 'time-tracking', timestamp: 1_700_000_000_000, metadata: { duration: 60_000 } },
    { entryId: 'session:bob:7:3600000', userId: 'bob@example.com', action: 'time-tracking', timestamp: 1_700_000_000_000, metadata: { sessionId: '7', duration: 3_600_000 } },
  ]);
  // Re-reading gives the same ids: nothing new for the store.
  t.deepEqual(entriesFromSessions(root, createNodeFsPort()).map((e) => e.entryId), entries.map((e) => e.entryId));
});

test('sessions: a session whose duration grew gets a new id ending with the new duration; unchanged ones keep theirs', (t) => {
  const root = tempDataRoot(t);
  writeTimeJson(root, 'alice', { sessions: [{ id: 's1', startTime: 1_700_000_000, endTime: 1_700_000_600 }, { id: 's2', startTime: 1_700_000_000, endTime: 1_700_000_060 }] });
  t.deepEqual(entriesFromSessions(root, createNodeFsPort()).map((e) => e.entryId), ['session:alice:s1:600000', 'session:alice:s2:60000']);
  writeTimeJson(root, 'alice', { sessions: [{ id: 's1', startTime: 1_700_000_000, endTime: 1_700_000_900 }, { id: 's2', startTime: 1_700_000_000, endTime: 1_700_000_060 }] });
  const again = entriesFromSessions(root, createNodeFsPort());
  t.deepEqual(again.map((e) => [e.entryId, e.metadata.duration]), [['session:alice:s1:900000', 900_000], ['session:alice:s2:60000', 60_000]]);
});

test('sessions: a session in both arrays is produced once; no user folder gives []', (t) => {
  const root = tempDataRoot(t);
  t.deepEqual(entriesFromSessions(root, createNodeFsPort()), []);
  const s = { id: 'x', startTime: 1_700_000_000, endTime: 1_700_000_010 };
  writeTimeJson(root, 'dan', { sessions: [s], timeTracking: { sessions: [s] } });
  t.is(entriesFromSessions(root, createNodeFsPort()).length, 1);
});

test('sessions: malformed files and sessions reject the whole call, listing every problem', (t) => {
  const root = tempDataRoot(t);
  writeTimeJson(root, 'alice', '{ not json');
  writeTimeJson(root, 'bob', {
    sessions: [
      { id: 'ok', startTime: 1_700_000_000, endTime: 1_700_000_010 },
      { id: 'bad-time', startTime: 'last tuesday', endTime: 1_700_000_010 },
      { id: 'backwards', startTime: 1_700_000_010, endTime: 1_700_000_000 },
      { id: 'no-start', endTime: 1_700_000_010 },
    ],
  });
  writeTimeJson(root, 'carol', { timeTracking: { sessions: 'nope' } });
  const error = t.throws(() => entriesFromSessions(root, createNodeFsPort()), { instanceOf: InputError });
  t.is(error?.exitCode, 2);
  t.deepEqual(
    error?.details.map((d) => d.path),
    [
      'user/alice/time.json',
      'user/bob/time.json: sessions[1].startTime',
      'user/bob/time.json: sessions[2]',
      'user/bob/time.json: sessions[3].startTime',
      'user/carol/time.json: timeTracking.sessions',
    ],
  );
});
