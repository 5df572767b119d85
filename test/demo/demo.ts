/**
 * `npm run demo [-- options]` — FlowForge Aggregation end to end, for a person trying the product.
 *
 * 1. Creates a scratch git repository in the OS temp folder and installs the hooks with the real
 *    CLI (`provider-bridge hooks install --repo=<scratch>`).
 * 2. Replays a commit history into it through those hooks (test/helpers/replay.ts): by default
 *    this project's own `git log` (falling back to the shared data set when that fails or is
 *    empty), or `--history=FILE` (NDJSON, shared/data/README.md). Every `git commit` fires the
 *    real `post-commit` hook, every switch between lines of development the real `post-checkout`.
 * 3. Imports a FlowForge session file (`aggregate --source=sessions`, twice: the second adds nothing).
 * 4. Runs `aggregate-force`, prints `aggregate-status --format=text`, a per-author commit table
 *    from the batch files, the figures (entries, batches, wall time, hook time), and PASS/FAIL
 *    checks against the history. Exit 0 when every check passes, 1 otherwise, 2 for bad options.
 *
 * The scratch folder is kept (its path is printed) so the batch files, journal and logs can be
 * inspected; `--clean` removes it at the end when every check passed.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { parseArgs } from 'node:util';
import {
  CLI_PATH,
  DEFAULT_HISTORY_FILE,
  PROJECT_ROOT,
  countBy,
  createScratchRepo,
  installHooks,
  numstatMismatches,
  percentile,
  planLines,
  readAggregationLog,
  readBatches,
  readHistoryFile,
  readRepoHistory,
  replayHistory,
  runCli,
  verifyCommits,
  writeSessionsFile,
  type Check,
  type HistoryCommit,
} from '../helpers/replay.js';

const USAGE = `Usage: npm run demo [-- options]
       node dist/test/demo/demo.js [options]

Replays a commit history through the real FlowForge git hooks in a scratch repository,
imports a FlowForge session file, flushes, and checks the batch files against the history.

Options:
  --history=FILE   NDJSON history to replay (e.g. ../shared/data/git-js-history.ndjson);
                   default: this repository's own git log (the data set when that fails)
  --limit=N        replay only the first N commits
  --keep           keep the scratch folder (the default; its path is printed)
  --clean          remove the scratch folder at the end when every check passed
  -h, --help       this text

Exit status: 0 every check passed, 1 a check failed or the replay broke, 2 bad options.`;

const out = (line = '') => process.stdout.write(`${line}\n`);
const fmtMs = (ms: number) => (Number.isNaN(ms) ? 'n/a' : ms >= 10_000 ? `${(ms / 1000).toFixed(1)} s` : `${Math.round(ms)} ms`);
const fmtDuration = (ms: number) => {
  const s = Math.round(ms / 1000);
  return s >= 60 ? `${Math.floor(s / 60)} min ${String(s % 60).padStart(2, '0')} s` : `${(ms / 1000).toFixed(1)} s`;
};

interface DemoOptions {
  history?: string;
  limit?: number;
  clean: boolean;
}

function parseOptions(argv: string[]): DemoOptions | 'help' {
  const { values, positionals } = parseArgs({
    args: argv,
    options: { history: { type: 'string' }, limit: { type: 'string' }, keep: { type: 'boolean' }, clean: { type: 'boolean' }, help: { type: 'boolean', short: 'h' } },
    strict: true,
    allowPositionals: true,
  });
  if (values.help) return 'help';
  if (positionals.length > 0) throw new Error(`unexpected argument ${positionals[0]}`);
  let limit: number | undefined;
  if (values.limit !== undefined) {
    limit = Number(values.limit);
    if (!Number.isInteger(limit) || limit < 1) throw new Error(`--limit must be a positive integer, got ${values.limit}`);
  }
  if (values.keep && values.clean) throw new Error('--keep and --clean contradict each other');
  return { history: values.history, limit, clean: values.clean === true };
}

/** The history to replay and a description of where it came from. */
function loadHistory(options: DemoOptions): { commits: HistoryCommit[]; source: string } {
  if (options.history !== undefined) {
    const file = path.resolve(process.cwd(), options.history);
    return { commits: readHistoryFile(file), source: file };
  }
  const own = readRepoHistory(PROJECT_ROOT);
  if (own) return { commits: own, source: `git log of ${PROJECT_ROOT} (authors pseudonymized)` };
  out(`(no readable git history in ${PROJECT_ROOT}; using the shared data set instead)`);
  return { commits: readHistoryFile(DEFAULT_HISTORY_FILE), source: DEFAULT_HISTORY_FILE };
}

function table(rows: string[][], align: Array<'l' | 'r'>): string[] {
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => r[i]!.length)));
  return rows.map((r) => '  ' + r.map((cell, i) => (align[i] === 'r' ? cell.padStart(widths[i]!) : cell.padEnd(widths[i]!))).join('  ').trimEnd());
}

function main(): number {
  const demoStarted = performance.now();
  let options: DemoOptions | 'help';
  try {
    options = parseOptions(process.argv.slice(2));
  } catch (error) {
    process.stderr.write(`demo: ${(error as Error).message}\n\n${USAGE}\n`);
    return 2;
  }
  if (options === 'help') {
    out(USAGE);
    return 0;
  }
  if (!fs.existsSync(CLI_PATH)) {
    process.stderr.write(`demo: ${CLI_PATH} is missing — run npm run build (npm run demo does)\n`);
    return 1;
  }

  // 1. History and scratch repository.
  const { commits: all, source } = loadHistory(options);
  const commits = options.limit !== undefined ? all.slice(0, options.limit) : all;
  const plan = planLines(all);
  const merges = commits.filter((c) => c.parents.length === 2).length;
  out(`FlowForge Aggregation demo`);
  out(`history     ${source}`);
  out(`            ${commits.length} commits${options.limit !== undefined ? ` (first ${commits.length} of ${all.length})` : ''}, ${merges} merges, ${new Set(commits.map((c) => c.author)).size} authors`);
  const repo = createScratchRepo('ff-demo-');
  out(`scratch     ${repo.root}`);
  out(`repository  ${repo.dir}`);
  out(`data root   ${repo.dataRoot}`);
  const hookFiles = installHooks(repo);
  out(`hooks       installed by provider-bridge hooks install: ${hookFiles.join(', ')}`);
  out();

  // 2. Replay through the real hooks.
  out(`Replaying ${commits.length} commits (each git commit runs the post-commit hook)…`);
  const step = Math.max(1, Math.min(250, Math.ceil(commits.length / 10)));
  const replayStarted = performance.now();
  const replay = replayHistory(repo, commits, {
    plan,
    onProgress(done, total) {
      if (done % step !== 0 && done !== total) return;
      const elapsed = performance.now() - replayStarted;
      const eta = (elapsed / done) * (total - done);
      out(`  ${String(done).padStart(String(total).length)}/${total}  ${fmtDuration(elapsed)} elapsed${done < total ? `, ~${fmtDuration(eta)} left` : ''}`);
    },
  });
  const numstatDiffs = numstatMismatches(repo, commits, replay.shaMap);
  out(`  done: ${replay.shaMap.size} commits, ${replay.checkouts} branch checkouts, ${replay.deletedBranches} merged topic branches deleted` +
    (replay.forcedMerges > 0 ? `, ${replay.forcedMerges} merges of an already-merged parent` : ''));
  out(`  numstat: ${commits.length - merges - numstatDiffs.length} of ${commits.length - merges} non-merge commits exact` +
    (numstatDiffs.length > 0 ? `, ${numstatDiffs.length} differ (${replay.impossible.size} need more lines than the synthetic tree had)` : ''));
  out();

  // 3. FlowForge sessions.
  const fixture = writeSessionsFile(repo.dataRoot, Date.now());
  out(`Importing FlowForge sessions from ${fixture.file}`);
  out(`  (${fixture.completed.length} completed sessions, ${fixture.open} still running)`);
  const sessionRuns = [1, 2].map(() => runCli(repo, ['aggregate', '--source=sessions']));
  sessionRuns.forEach((run, i) => {
    const r = run.json?.result;
    out(`  aggregate --source=sessions (${i === 0 ? 'first' : 'again'}): ` +
      (run.status === 0 && r ? `accepted ${String(r.accepted)}, duplicates ${String(r.duplicates)}` : `exit ${run.status}: ${(run.json?.error?.message ?? run.stderr).trim()}`));
  });
  out();

  // 4. Flush, status, batch files.
  const force = runCli(repo, ['aggregate-force']);
  const flushed = (force.json?.result?.flushed as unknown[] | undefined)?.length ?? 0;
  out(`aggregate-force: ${force.status === 0 ? `flushed ${flushed} batch(es), pending ${String(force.json?.result?.pending)}` : `exit ${force.status}: ${force.stdout}${force.stderr}`}`);
  out();
  const statusText = runCli(repo, ['aggregate-status', '--format=text']);
  out('aggregate-status --format=text:');
  for (const line of (statusText.stdout || statusText.stderr).trimEnd().split('\n')) out(`  ${line}`);
  out();
  const status = runCli(repo, ['aggregate-status']);

  const { files, entries } = readBatches(repo.dataRoot);
  const commitEntries = entries.filter((e) => e.action === 'commit');
  const checkoutEntries = entries.filter((e) => e.action === 'checkout');
  const sessionEntries = entries.filter((e) => e.action === 'time-tracking');

  const expected = countBy(commits, (c) => c.author);
  const actual = countBy(commitEntries, (e) => e.userId);
  const authors = [...new Set([...expected.keys(), ...actual.keys()])].sort(
    (a, b) => (actual.get(b) ?? 0) - (actual.get(a) ?? 0) || (a < b ? -1 : 1),
  );
  const shown = authors.slice(0, 20);
  out(`Commits per author, counted from ${files.length} batch file(s) (action "commit" per userId):`);
  for (const line of table(
    [['author', 'entries', 'history', ''], ...shown.map((a) => [a, String(actual.get(a) ?? 0), String(expected.get(a) ?? 0), actual.get(a) === expected.get(a) ? 'ok' : 'MISMATCH'])],
    ['l', 'r', 'r', 'l'],
  )) out(line);
  if (authors.length > shown.length) {
    const rest = authors.slice(shown.length);
    const restOk = rest.every((a) => actual.get(a) === expected.get(a));
    out(`  … ${rest.length} more authors with ${rest.reduce((n, a) => n + (actual.get(a) ?? 0), 0)} commits (${restOk ? 'all ok' : 'MISMATCHES'})`);
  }
  out();

  // 5. Figures. Hook time: the host logs one "hook ok" line per hook call with durationMs
  // (measured inside the process, excluding node's start-up); the git commit wall time includes
  // git, node start-up and the hook.
  const log = readAggregationLog(repo.dataRoot);
  const hookLines = log.filter((l) => l.msg === 'hook ok' && typeof l.durationMs === 'number');
  const hookMs = hookLines.map((l) => l.durationMs as number);
  const hookErrors = log.filter((l) => l.level === 'error');
  const wall = performance.now() - demoStarted;
  out('Figures:');
  for (const line of table(
    [
      ['commits replayed', String(replay.shaMap.size)],
      ['commit entries', String(commitEntries.length)],
      ['checkout entries', `${checkoutEntries.length} (${replay.checkouts} branch checkouts run)`],
      ['session entries', String(sessionEntries.length)],
      ['entries in batches', String(entries.length)],
      ['batch files', String(files.length)],
      ['replay wall time', `${fmtDuration(replay.totalMs)} (${fmtMs(replay.totalMs / Math.max(1, replay.shaMap.size))} per commit)`],
      ['demo wall time', fmtDuration(wall)],
      ['hook time (in process)', hookMs.length > 0 ? `median ${fmtMs(percentile(hookMs, 50))}, p90 ${fmtMs(percentile(hookMs, 90))} over ${hookMs.length} hook calls (aggregation.log durationMs)` : 'not logged'],
      ['git commit wall time', `median ${fmtMs(percentile(replay.commitMs, 50))}, p90 ${fmtMs(percentile(replay.commitMs, 90))} (git + node start-up + post-commit hook)`],
      ['git checkout wall time', replay.checkoutMs.length > 0 ? `median ${fmtMs(percentile(replay.checkoutMs, 50))}, p90 ${fmtMs(percentile(replay.checkoutMs, 90))} (git + post-checkout hook)` : 'n/a'],
    ],
    ['l', 'l'],
  )) out(line);
  out();

  // 6. Checks.
  const checks: Check[] = verifyCommits(commits, replay, entries, numstatDiffs);
  const add = (name: string, ok: boolean, detail: string) => checks.push({ name, ok, detail });
  add('checkout entries == branch checkouts run', checkoutEntries.length === replay.checkouts, `${checkoutEntries.length} entries, ${replay.checkouts} checkouts`);
  const [first, second] = sessionRuns as [ReturnType<typeof runCli>, ReturnType<typeof runCli>];
  const n = fixture.completed.length;
  add('sessions: first import accepts every completed session', first.status === 0 && first.json?.result?.accepted === n, `accepted ${String(first.json?.result?.accepted)} of ${n} (exit ${first.status})`);
  add('sessions: second import adds nothing', second.status === 0 && second.json?.result?.accepted === 0 && second.json?.result?.duplicates === n,
    `accepted ${String(second.json?.result?.accepted)}, duplicates ${String(second.json?.result?.duplicates)}`);
  const wrongSessions = fixture.completed.filter((s) => {
    const e = sessionEntries.find((x) => x.metadata?.sessionId === s.sessionId);
    return !e || e.timestamp !== s.start || e.metadata?.duration !== s.duration || e.userId !== fixture.userId;
  }).length;
  add('session entries: one per completed session, start and duration exact', sessionEntries.length === n && wrongSessions === 0, `${sessionEntries.length} entries, ${wrongSessions} wrong`);
  const pending = status.json?.result?.pending;
  add('nothing pending after aggregate-force', force.status === 0 && status.status === 0 && pending === 0, `pending ${String(pending)}`);
  add('no hook or handler errors in aggregation.log', hookErrors.length === 0,
    hookErrors.length === 0 ? `${log.length} log lines` : `${hookErrors.length} errors, first: ${JSON.stringify(hookErrors[0])}`);

  out('Checks:');
  for (const c of checks) out(`  ${c.ok ? 'PASS' : 'FAIL'}  ${c.name} — ${c.detail}`);
  const failed = checks.filter((c) => !c.ok).length;
  out();
  out(failed === 0 ? `All ${checks.length} checks passed.` : `${failed} of ${checks.length} checks FAILED.`);
  if (options.clean && failed === 0) {
    repo.remove();
    out(`Removed ${repo.root}.`);
  } else {
    out(`Scratch folder kept: ${repo.root}`);
    out(`  batch files: ${path.join(repo.dataRoot, 'aggregated')}`);
    out(`  try:         cd ${repo.dir} && git log --graph --oneline --all | head -40`);
    out(`               node ${CLI_PATH} aggregate-status --format=text`);
  }
  return failed === 0 ? 0 : 1;
}

try {
  process.exitCode = main();
} catch (error) {
  process.stderr.write(`demo failed: ${(error as Error).stack ?? String(error)}\n`);
  process.exitCode = 1;
}
