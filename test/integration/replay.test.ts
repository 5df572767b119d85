/**
 * Replays the first 300 commits of the shared real history (`../shared/data/git-js-history.ndjson`,
 * shared/data/README.md) through the REAL post-commit / post-checkout hooks, installed with
 * `provider-bridge hooks install`, in a scratch repository, then flushes with `aggregate-force`
 * and checks the batch files against the history: exact per-author counts, timestamps, merges,
 * entry count, unique ids, and never `branch: "HEAD"`.
 *
 * The replay (~300 × git commit with the hook, plus branch checkouts: 1–2 minutes on 2 cores)
 * runs once in `test.before`, which extends ava's timeout for itself; the tests only read.
 */
import test from 'ava';
import * as fs from 'node:fs';
import * as path from 'node:path';
import {
  CLI_PATH,
  PROJECT_ROOT,
  countBy,
  createScratchRepo,
  installHooks,
  numstatMismatches,
  parentCount,
  planLines,
  readAggregationLog,
  readBatches,
  readHistoryFile,
  replayHistory,
  runCli,
  type CliRun,
  type HistoryCommit,
  type ReplayResult,
  type ScratchRepo,
  type StoredEntry,
} from '../helpers/replay.js';

const HISTORY_FILE = path.resolve(PROJECT_ROOT, '../shared/data/git-js-history.ndjson');
const COUNT = 300;

interface Replayed {
  repo: ScratchRepo;
  commits: HistoryCommit[];
  replay: ReplayResult;
  force: CliRun;
  status: CliRun;
  batchFiles: string[];
  entries: StoredEntry[];
  commitEntries: StoredEntry[];
  numstatDiffs: string[];
}

let state: Replayed | undefined;
let scratch: ScratchRepo | undefined;

/** The shared replay, or a failure explaining why it is missing. */
function replayed(): Replayed {
  if (!state) throw new Error('the replay in test.before did not complete (see its error above)');
  return state;
}

test.before('replay the first 300 commits through the real hooks', (t) => {
  t.timeout(8 * 60_000, 'replaying 300 commits through the hooks took more than 8 minutes');
  if (!fs.existsSync(HISTORY_FILE)) {
    throw new Error(
      `The shared history ${HISTORY_FILE} is missing. This test reads ../shared/data/git-js-history.ndjson ` +
        'beside the project clone (shared/ sits next to the checkout in CI); put the data set there.',
    );
  }
  if (!fs.existsSync(CLI_PATH)) throw new Error(`${CLI_PATH} is missing: run npm run build first`);
  const all = readHistoryFile(HISTORY_FILE);
  const commits = all.slice(0, COUNT);
  scratch = createScratchRepo('ff-replay-test-');
  installHooks(scratch);
  const replay = replayHistory(scratch, commits, { plan: planLines(all) });
  const force = runCli(scratch, ['aggregate-force']);
  const status = runCli(scratch, ['aggregate-status']);
  const { files, entries } = readBatches(scratch.dataRoot);
  state = {
    repo: scratch,
    commits,
    replay,
    force,
    status,
    batchFiles: files,
    entries,
    commitEntries: entries.filter((e) => e.action === 'commit'),
    numstatDiffs: numstatMismatches(scratch, commits, replay.shaMap),
  };
  t.log(`replayed ${replay.shaMap.size} commits and ${replay.checkouts} checkouts in ${Math.round(replay.totalMs / 1000)} s; ${files.length} batch files`);
});

test.after.always('remove the scratch repository', () => {
  scratch?.remove();
});

test('the history file holds the known facts for its first 300 commits', (t) => {
  const { commits } = replayed();
  t.is(commits.length, 300);
  t.is(commits.filter((c) => c.author === 'dev-001').length, 211);
  t.is(commits.filter((c) => c.parents.length === 2).length, 61);
});

test('the scratch repository has the shape of the history: 300 commits, 61 of them merges', (t) => {
  const { repo, replay } = replayed();
  t.is(replay.shaMap.size, 300);
  t.is(new Set(replay.shaMap.values()).size, 300);
  t.is(repo.git(['rev-list', '--all', '--count']), '300');
  t.is(repo.git(['rev-list', '--all', '--merges', '--count']), '61');
  t.is(repo.git(['rev-list', '--all', '--min-parents=3', '--count']), '0');
});

test('aggregate-force flushed everything: nothing pending, batches hold every entry', (t) => {
  const { force, status, entries, batchFiles } = replayed();
  t.is(force.status, 0, force.stdout + force.stderr);
  t.is(status.status, 0, status.stdout + status.stderr);
  t.is(status.json?.result?.pending, 0);
  t.deepEqual(status.json?.result?.batches, { count: batchFiles.length, entries: entries.length });
});

test('exactly 300 commit entries, one per replayed commit', (t) => {
  const { commitEntries, replay } = replayed();
  t.is(commitEntries.length, 300);
  const shas = commitEntries.map((e) => e.metadata?.sha as string);
  t.deepEqual([...shas].sort(), [...replay.shaMap.values()].sort());
});

test('per-author commit counts equal the history exactly (dev-001: 211)', (t) => {
  const { commits, commitEntries } = replayed();
  const expected = Object.fromEntries([...countBy(commits, (c) => c.author)].sort());
  const actual = Object.fromEntries([...countBy(commitEntries, (e) => e.userId)].sort());
  t.deepEqual(actual, expected);
  t.is(actual['dev-001'], 211);
});

test('every commit timestamp is authorTime × 1000', (t) => {
  const { commits, commitEntries, replay } = replayed();
  const original = new Map([...replay.shaMap].map(([o, r]) => [r, o]));
  const bySha = new Map(commits.map((c) => [c.sha, c]));
  const wrong = commitEntries
    .map((e) => ({ e, c: bySha.get(original.get(e.metadata?.sha as string) ?? '') }))
    .filter(({ e, c }) => !c || e.timestamp !== c.authorTime * 1000)
    .map(({ e, c }) => `${String(e.metadata?.sha)}: ${e.timestamp} vs ${c ? c.authorTime * 1000 : 'unknown commit'}`);
  t.deepEqual(wrong, []);
});

test('the 61 merge commits have two parents in their metadata, the others as many as in the history', (t) => {
  const { commits, commitEntries, replay } = replayed();
  const original = new Map([...replay.shaMap].map(([o, r]) => [r, o]));
  const bySha = new Map(commits.map((c) => [c.sha, c]));
  const merges = commitEntries.filter((e) => parentCount(e.metadata) === 2);
  t.is(merges.length, 61);
  for (const e of merges) t.is(bySha.get(original.get(e.metadata?.sha as string) ?? '')?.parents.length, 2);
  const wrong = commitEntries.filter((e) => parentCount(e.metadata) !== bySha.get(original.get(e.metadata?.sha as string) ?? '')?.parents.length);
  t.is(wrong.length, 0);
});

test('no entry id appears twice across the batch files', (t) => {
  const { entries } = replayed();
  const repeated = [...countBy(entries, (e) => e.entryId)].filter(([, n]) => n > 1);
  t.deepEqual(repeated, []);
});

test('branch metadata is a branch name or null, never the string "HEAD"', (t) => {
  const { entries, commitEntries } = replayed();
  t.deepEqual(entries.filter((e) => e.metadata?.branch === 'HEAD'), []);
  // HEAD is always on a branch during the replay, so every commit names one.
  t.deepEqual(commitEntries.filter((e) => typeof e.metadata?.branch !== 'string' || e.metadata.branch === ''), []);
});

test('one checkout entry per branch checkout, and no hook logged an error', (t) => {
  const { entries, replay, repo } = replayed();
  t.is(entries.filter((e) => e.action === 'checkout').length, replay.checkouts);
  t.deepEqual(readAggregationLog(repo.dataRoot).filter((l) => l.level === 'error'), []);
});

test('synthetic changes reproduce the recorded numstat wherever the tree has enough lines', (t) => {
  const { numstatDiffs, replay, commitEntries, commits } = replayed();
  t.deepEqual(numstatDiffs.filter((s) => !replay.impossible.has(s)), []);
  t.true(replay.impossible.size <= 2, `${replay.impossible.size} commits could not be reproduced`);
  const original = new Map([...replay.shaMap].map(([o, r]) => [r, o]));
  const bySha = new Map(commits.map((c) => [c.sha, c]));
  const disagree = commitEntries.filter((e) => {
    const c = bySha.get(original.get(e.metadata?.sha as string) ?? '');
    if (!c || c.parents.length === 2 || replay.impossible.has(c.sha)) return false;
    return e.metadata?.filesChanged !== c.filesChanged || e.metadata?.insertions !== c.insertions || e.metadata?.deletions !== c.deletions;
  });
  t.deepEqual(disagree, []);
});
