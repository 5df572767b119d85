/**
 * `npm run bench [-- --quick] [-- --only=hook,scale|1,4] [-- --out=FILE] [-- --runs=N] [-- --keep] [-- --fresh]`
 *
 * The benchmark suite of issue 5. Every figure is measured side by side with the floor it is
 * compared to, in the same run: whole processes, repeated, INTERLEAVED (floor, measured,
 * floor, measured… with the order rotated each round), and compared by medians. It prints a
 * table (figure, measured, floor, ratio, budget, result) and writes every figure, with its
 * sample summaries, as JSON to `--out=FILE` or `<os tmpdir>/ff-bench-<time>.json` (never into
 * the repository; the path is printed). Scratch repositories and stores live in a folder
 * `<bench folder>/run-XXXXXX` removed at the end (`--keep` keeps it); generated stores and input
 * files are cached in `<bench folder>/cache/<format hash>/` between runs (`--fresh` rebuilds
 * them). The bench folder is `--dir`, else `FF_BENCH_DIR`, else `~/.cache/flowforge-bench`
 * (XDG_CACHE_HOME respected), not the OS temp folder: see `benchRoot()` in fixtures.ts for why.
 * These are benchmarks, not tests: nothing in `npm test` runs them or depends on speed.
 *
 * "ratio" is always measured time / floor time (for peak RSS: measured / floor RSS).
 *
 * Figures (group name for --only in brackets):
 *  1. [hook] hook path: `provider-bridge aggregate --source=git-commit --hook` (exactly what the
 *     post-commit hook runs) in a scratch repository — (a) the same HEAD again each run (a
 *     duplicate) and (b) a fresh commit before each run (made untimed). Floor: bare `node -e 0`.
 *     Budget ≤ 1.5× the floor.
 *  2. [commit] a whole `git commit` in a repository with our post-commit hook (installed by
 *     `provider-bridge hooks install`) minus the same commit in a repository whose post-commit
 *     hook runs `node -e 0`. Budget ≤ 50 ms extra (difference of medians; the median of paired
 *     differences is in the JSON).
 *  3. [status] `aggregate-status` on a small store. Floor: `node -e 0`. Budget ≤ 1.5×.
 *  4. [scale] `aggregate-status` and the hook path (fresh commit each run) against stores with
 *     10, 1,000 and 10,000 stored batches of 50 entries (generated directly in the store's
 *     formats). Floor: `node -e 0`. Budget: 10,000-batch median ≤ 1.3 × the 10-batch median.
 *  5. [ingest] bulk ingest: one `aggregate --input=FILE` of 10k / 100k / 1M NDJSON entries into
 *     an empty store, as entries/s: the call returns once every entry is durable (SPEC §5
 *     "acknowledged"). A final `aggregate-force` (a separate process; with a multiple of
 *     `batchSize` it has nothing left to flush) is timed too and shown beside it, and the store
 *     is checked to hold each entry once in batch files. Floor: a bare node process that reads
 *     the same file, parses every line, writes it back as one file and fsyncs it once. Budget
 *     ≥ 100,000 entries/s at 100k (10k and 1M show the growth; `--quick` skips 1M). The stores
 *     are deleted only when the benchmark ends: ext4 without a journal (this machine's disk)
 *     skips inodes freed in the last minute or more when it creates files, so deleting 2,000
 *     batch files just before the next run made that run's creates 3–5× slower.
 *  6. [flush] one flush of a 50-entry batch, in-process (`withStore` from dist with a real temp
 *     store: intent record, atomic batch file + directory fsync, commit record), p50/p99 over
 *     ≥ 200 flushes. Floor: the same bytes through bare fs calls (append+fdatasync, write+fsync+
 *     rename+dir fsync, append+fdatasync). Budget p99 ≤ 5 ms.
 *  7. [concurrency] 50 concurrent processes × 20 single-entry `aggregate --entry` calls (1,000
 *     calls, 50 at a time, one data root); every call must exit 0 with ok:true and accepted 1,
 *     and the store must hold exactly 1,000 entries afterwards. Floor: the same 1,000 `node -e 0`
 *     runs at the same concurrency, run before and after (mean). Budget total wall ≤ 1.25×.
 *  8. [stream] streamed ingest of 1,000,000 NDJSON entries piped into `aggregate --input=-`:
 *     peak RSS (GNU `time -v` "Maximum resident set size", else /proc VmHWM polling), with a
 *     timeout. Floor: peak RSS of `node -e 0`. Budget ≤ 200 MB. (`--quick`: 100,000 entries.)
 *  9. [recovery] one `aggregate-recover` over 1,000 failed batches (50 entries each, Failed
 *     Batch Format, all due). Floor: `node -e 0`. Budget ≤ 3 s.
 * 10. [auto] `batchSize: "auto"`: small and large entries, batch files per 10k entries and
 *     bytes per file, vs batchSize 50.
 * 11. [report] `aggregate-report --by=day` over 1,000,000 stored entries (20,000 batch files,
 *     generated once and cached; see report-bench.ts), median of 3 whole processes, with peak
 *     RSS. Floor: `node -e 0`. Budget: "a few seconds" (≤ 5 s). (`--quick`: 100,000.)
 *  P. [profile] where the hook path's time goes: a CPU profile (`node --cpu-prof`, self time by
 *     package/file, mean of 3 runs), the load time of each module of the hook path (dynamic
 *     `import()` timed in a fresh process, in hook order and each alone), and the number of git
 *     processes one hook call spawns (a PATH shim counts them).
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';
import { execFileSync } from 'node:child_process';
import * as v from 'valibot';
import { ConfigSchema } from '../../src/config/schema.js';
import type { HandlerContext } from '../../src/core/context.js';
import { createNodeFsPort } from '../../src/core/fs-port.js';
import { createMemoryLogger } from '../../src/core/logger.js';
import { withStore } from '../../plugins/aggregation/aggregator.js';
import { makeBatch } from '../../plugins/aggregation/batch-store.js';
import type { Entry } from '../../plugins/aggregation/types.js';
import {
  assertOutsideProject,
  benchEntry,
  benchRoot,
  cached,
  cacheDir,
  BIN,
  BLOB,
  cleanEnv,
  CLI,
  copyStore,
  generateHistoryStore,
  generateRecoveryStore,
  makeRepo,
  NODE,
  PROJECT_ROOT,
  writeNdjson,
  type Repo,
} from './fixtures.js';
import { interleave, median, quantile, runOk, runPool, runTimed, runWithPeakRss, summarize, type Cmd, type Env, type RunResult } from './harness.js';

// ---- options ------------------------------------------------------------------------------

const GROUPS = ['hook', 'commit', 'status', 'scale', 'ingest', 'flush', 'concurrency', 'stream', 'recovery', 'auto', 'report', 'profile'] as const;
type Group = (typeof GROUPS)[number];
const BY_NUMBER: Record<string, Group> = { '1': 'hook', '2': 'commit', '3': 'status', '4': 'scale', '5': 'ingest', '6': 'flush', '7': 'concurrency', '8': 'stream', '9': 'recovery', '10': 'auto', '11': 'report', p: 'profile' };

const { values: opts } = parseArgs({
  options: {
    quick: { type: 'boolean', default: false },
    only: { type: 'string' },
    out: { type: 'string' },
    runs: { type: 'string' },
    keep: { type: 'boolean', default: false },
    fresh: { type: 'boolean', default: false },
    dir: { type: 'string' },
    help: { type: 'boolean', short: 'h' },
  },
});

if (opts.help) {
  console.log(`Usage: npm run bench -- [--quick] [--only=GROUP[,GROUP…]] [--out=FILE] [--runs=N] [--keep] [--fresh] [--dir=DIR]

Groups (or figure numbers): ${GROUPS.map((g) => g).join(', ')} (1–11, p)
  --quick   fewer repetitions, no 1M-entry ingest, streamed ingest of 100k instead of 1M
  --runs=N  repetitions of the interleaved process loops (default 15, quick 6)
  --out     where the JSON goes (default <tmpdir>/ff-bench-<time>.json; never inside the repo)
  --keep    keep the scratch folder; --fresh rebuild the cached stores and inputs
  --dir     the bench folder for scratch stores and the cache (default FF_BENCH_DIR, else
            ~/.cache/flowforge-bench; not /tmp, whose file creates are slowed by churn)`);
  process.exit(0);
}

if (opts.dir !== undefined) process.env.FF_BENCH_DIR = path.resolve(opts.dir);
const quick = opts.quick === true;
const selected = new Set<Group>();
for (const name of (opts.only ?? GROUPS.join(',')).split(',').map((s) => s.trim().toLowerCase()).filter(Boolean)) {
  const group = (BY_NUMBER[name] ?? name) as Group;
  if (!GROUPS.includes(group)) {
    console.error(`unknown group "${name}"; groups: ${GROUPS.join(', ')} (or 1–11, p)`);
    process.exit(2);
  }
  selected.add(group);
}
const RUNS = opts.runs ? Math.max(2, Number(opts.runs)) : quick ? 6 : 15;

const outFile = path.resolve(opts.out ?? path.join(os.tmpdir(), `ff-bench-${new Date().toISOString().replace(/[:.]/g, '-')}.json`));
if (outFile.startsWith(PROJECT_ROOT + path.sep)) {
  console.error(`--out must not be inside the repository (${PROJECT_ROOT}); the benchmark never writes there`);
  process.exit(2);
}

// ---- rows and report ----------------------------------------------------------------------

type Status = 'pass' | 'MISS' | 'info' | 'TODO' | 'skipped' | 'error';

interface Row {
  id: string;
  figure: string;
  measured: string;
  floor: string;
  ratio: string;
  budget: string;
  result: Status;
  note?: string;
  /** Numbers behind the row (ms, entries/s, MB…), for the JSON. */
  data?: Record<string, unknown>;
}

const rows: Row[] = [];
const details: Record<string, unknown> = {};
const started = Date.now();

const ms = (x: number) => (Number.isFinite(x) ? (x >= 10_000 ? `${(x / 1000).toFixed(2)} s` : `${x.toFixed(x < 10 ? 2 : 1)} ms`) : '—');
const times = (x: number) => (Number.isFinite(x) ? `${x.toFixed(2)}×` : '—');
const perSec = (x: number) => (Number.isFinite(x) ? `${Math.round(x).toLocaleString('en-US')}/s` : '—');
const mb = (kb: number | undefined) => (kb === undefined ? '—' : `${(kb / 1024).toFixed(1)} MB`);
const verdict = (ok: boolean): Status => (ok ? 'pass' : 'MISS');
/** A difference in ms with its sign: `+33.9 ms`, `−10.9 ms`. */
const signedMs = (x: number) => `${x < 0 ? '−' : '+'}${ms(Math.abs(x))}`;

function log(message: string): void {
  const t = ((Date.now() - started) / 1000).toFixed(0).padStart(4);
  process.stderr.write(`[${t}s] ${message}\n`);
}

// ---- scratch environment ------------------------------------------------------------------

if (!fs.existsSync(CLI)) {
  console.error(`${CLI} is missing: run npm run build first (npm run bench does)`);
  process.exit(2);
}
if (!fs.existsSync(BLOB)) log(`${BLOB} is missing (esbuild not installed?): provider-bridge runs from the ESM build`);
if (opts.fresh) fs.rmSync(cacheDir(), { recursive: true, force: true });
const work = fs.realpathSync(fs.mkdtempSync(path.join(benchRoot(), 'run-')));
assertOutsideProject(work);
const home = path.join(work, 'home');
fs.mkdirSync(home);
const env = cleanEnv(home);
const HOOK_ARGS = ['aggregate', '--source=git-commit', '--hook'];
/**
 * The same environment without NODE_EXTRA_CA_CERTS. Node 20 parses that whole bundle at
 * start-up, which is most of `node -e 0` on a machine that sets it; our launchers drop it for
 * actions that open no TLS connection. The like-for-like rows compare without it on both sides.
 */
const envNoCa: Env = Object.fromEntries(Object.entries(env).filter(([k]) => k !== 'NODE_EXTRA_CA_CERTS'));
const caSet = env.NODE_EXTRA_CA_CERTS !== undefined && env.NODE_EXTRA_CA_CERTS !== '';

const nodeFloor: Cmd = { file: NODE, args: ['-e', '0'], cwd: work, env };
/** `provider-bridge …` as users run it: the bin, which starts the startup snapshot. */
const cli = (args: string[], cwd: string, extraEnv: Env = {}): Cmd => ({ file: BIN, args, cwd, env: { ...env, ...extraEnv } });
/** The same call through the plain ESM entry (no snapshot, NODE_EXTRA_CA_CERTS kept), for the reference rows. */
const cliEsm = (args: string[], cwd: string): Cmd => ({ file: NODE, args: [CLI, ...args], cwd, env });
/** The same call from the snapshot with NODE_EXTRA_CA_CERTS kept: the snapshot's effect alone. */
const cliSnapshotCa = (args: string[], cwd: string): Cmd => ({ file: NODE, args: ['--snapshot-blob', BLOB, '--', ...args], cwd, env });

/** Parses the single JSON document of a CLI run; throws unless exit 0 and ok:true. */
function okResult(r: RunResult | { code: number | null; stdout: string; stderr: string }, what: string): any {
  let doc: any;
  try {
    doc = JSON.parse(r.stdout);
  } catch {
    doc = undefined;
  }
  if (r.code !== 0 || doc?.ok !== true) throw new Error(`${what}: exit ${r.code}, ${(r.stdout || r.stderr).slice(0, 400)}`);
  return doc.result;
}

/** A timed run that must exit 0 (and, when `what` is given for a JSON action, print ok:true). */
const timeOf = (cmd: Cmd, check?: (r: RunResult) => void) => (): number => {
  const r = runTimed(cmd);
  if (check) check(r);
  else if (r.code !== 0) throw new Error(`${cmd.args.join(' ')}: exit ${r.code}: ${r.stderr.slice(0, 300)}`);
  return r.ms;
};
const timeOk = (cmd: Cmd, what: string) => timeOf(cmd, (r) => void okResult(r, what));

/** Entries stored in a data root (pending + in batch files), via `aggregate-status`. */
function storedEntries(dataRoot: string): { pending: number; batchEntries: number; batches: number; total: number } {
  const s = okResult(runTimed(cli(['aggregate-status', `--data-path=${dataRoot}`], work)), 'aggregate-status');
  return { pending: s.pending, batchEntries: s.batches.entries, batches: s.batches.count, total: s.pending + s.batches.entries };
}

/** Hook calls logged in `<dataRoot>/logs/aggregation.log`: in-process durations and failures. */
function hookLog(dataRoot: string): { ok: number; failed: number; inProcessMs: number[] } {
  const file = path.join(dataRoot, 'logs/aggregation.log');
  const result = { ok: 0, failed: 0, inProcessMs: [] as number[] };
  if (!fs.existsSync(file)) return result;
  for (const line of fs.readFileSync(file, 'utf8').split('\n')) {
    if (!line) continue;
    try {
      const rec = JSON.parse(line) as { msg?: string; durationMs?: number };
      if (rec.msg === 'hook ok') {
        result.ok++;
        if (typeof rec.durationMs === 'number') result.inProcessMs.push(rec.durationMs);
      } else if (rec.msg === 'hook invocation failed') result.failed++;
    } catch {
      /* a rotated or partial line */
    }
  }
  return result;
}

/**
 * A side-by-side row that has no budget of its own (`(reference)` or `(like for like)`):
 * median of `measured` over median of `floor`, both in ms from one interleaved run.
 */
function infoRow(id: string, figure: string, measured: number[], floor: number[], floorLabel: string, budget: '(reference)' | '(like for like)', note?: string): void {
  const m = median(measured);
  const f = median(floor);
  rows.push({
    id,
    figure,
    measured: ms(m),
    floor: `${ms(f)} ${floorLabel}`,
    ratio: times(m / f),
    budget,
    result: 'info',
    ...(note ? { note } : {}),
    data: { measured: summarize(measured), floor: summarize(floor), ratio: m / f },
  });
}

// ---- 1. hook path -------------------------------------------------------------------------

function benchHook(): void {
  log(`1 hook path: ${RUNS} interleaved rounds`);
  const dup = makeRepo(path.join(work, 'repo-hook-dup'), env);
  const fresh = makeRepo(path.join(work, 'repo-hook-fresh'), env);
  const dupEsm = makeRepo(path.join(work, 'repo-hook-dup-esm'), env);
  okResult(runTimed(cliEsm(['aggregate', '--source=git-commit'], dupEsm.dir)), 'aggregate --source=git-commit (ESM)');
  const dupSnap = makeRepo(path.join(work, 'repo-hook-dup-snapshot'), env);
  okResult(runTimed(cliSnapshotCa(['aggregate', '--source=git-commit'], dupSnap.dir)), 'aggregate --source=git-commit (snapshot, CA kept)');
  const first = okResult(runTimed(cli(['aggregate', '--source=git-commit'], dup.dir)), 'aggregate --source=git-commit');
  if (first.accepted !== 1) throw new Error(`expected the HEAD commit to be accepted, got ${JSON.stringify(first)}`);
  const s = interleave(RUNS, [
    { name: 'floor', run: timeOf(nodeFloor) },
    { name: 'dup', run: timeOf(cli(HOOK_ARGS, dup.dir)) },
    { name: 'fresh', prepare: () => void fresh.commit('bench commit'), run: timeOf(cli(HOOK_ARGS, fresh.dir)) },
    { name: 'dupEsm', run: timeOf(cliEsm(HOOK_ARGS, dupEsm.dir)) },
    { name: 'dupSnapCa', run: timeOf(cliSnapshotCa(HOOK_ARGS, dupSnap.dir)) },
    ...(caSet ? [{ name: 'floorNoCa', run: timeOf({ ...nodeFloor, env: envNoCa }) }] : []),
  ]);
  const floor = median(s.floor!);
  const freshRoot = path.join(fresh.dir, '.flowforge');
  const stored = storedEntries(freshRoot);
  const hl = { dup: hookLog(path.join(dup.dir, '.flowforge')), fresh: hookLog(freshRoot) };
  const expected = RUNS + 1; // one warm-up round
  for (const [name, label] of [
    ['dup', 'hook path, same HEAD again (duplicate)'],
    ['fresh', 'hook path, fresh commit each run'],
  ] as const) {
    const m = median(s[name]!);
    const logInfo = hl[name];
    rows.push({
      id: `1${name === 'dup' ? 'a' : 'b'}`,
      figure: label,
      measured: ms(m),
      floor: `${ms(floor)} node -e 0`,
      ratio: times(m / floor),
      budget: '≤ 1.50×',
      result: logInfo.failed > 0 ? 'error' : verdict(m / floor <= 1.5),
      note:
        `in-process handler (host log) median ${ms(median(logInfo.inProcessMs))}; ${logInfo.failed} failed hook calls` +
        (name === 'fresh' ? `; ${stored.total}/${expected} fresh commits stored` : ''),
      data: { measured: summarize(s[name]!), floor: summarize(s.floor!), ratio: m / floor, inProcessMs: summarize(logInfo.inProcessMs), failedHookCalls: logInfo.failed, ...(name === 'fresh' ? { stored, expected } : {}) },
    });
  }
  const esm = median(s.dupEsm!);
  infoRow('1c', 'hook path, duplicate, ESM entry, CA kept (as before)', s.dupEsm!, s.floor!, 'node -e 0', '(reference)');
  infoRow('1d', 'hook path, duplicate, snapshot, CA kept', s.dupSnapCa!, s.floor!, 'node -e 0', '(reference)', `the snapshot alone saves ${ms(esm - median(s.dupSnapCa!))} per hook call`);
  if (caSet) {
    infoRow(
      '1e',
      'hook path, duplicate, vs node -e 0 without NODE_EXTRA_CA_CERTS',
      s.dup!,
      s.floorNoCa!,
      'node -e 0, no CA',
      '(like for like)',
      `NODE_EXTRA_CA_CERTS costs node ${ms(floor - median(s.floorNoCa!))} at start-up; the hook drops it, so this is the hook's own cost over bare node`,
    );
  }
}

// ---- 2. whole git commit ------------------------------------------------------------------

function benchCommit(): void {
  log(`2 git commit with our hook vs a node -e 0 hook: ${RUNS} interleaved rounds`);
  const ours = makeRepo(path.join(work, 'repo-commit-ours'), env);
  const base = makeRepo(path.join(work, 'repo-commit-floor'), env);
  okResult(runTimed(cli(['hooks', 'install', `--repo=${ours.dir}`], ours.dir)), 'hooks install');
  const hooksDir = path.resolve(base.dir, base.git(['rev-parse', '--git-path', 'hooks']));
  fs.mkdirSync(hooksDir, { recursive: true });
  fs.writeFileSync(path.join(hooksDir, 'post-commit'), `#!/bin/sh\n'${NODE}' -e 0 >/dev/null 2>&1 || true\nexit 0\n`, { mode: 0o755 });
  // Like for like: a node -e 0 hook that also starts without NODE_EXTRA_CA_CERTS, as ours does.
  const baseNoCa = makeRepo(path.join(work, 'repo-commit-floor-no-ca'), env);
  const hooksDirNoCa = path.resolve(baseNoCa.dir, baseNoCa.git(['rev-parse', '--git-path', 'hooks']));
  fs.mkdirSync(hooksDirNoCa, { recursive: true });
  fs.writeFileSync(path.join(hooksDirNoCa, 'post-commit'), `#!/bin/sh\nNODE_EXTRA_CA_CERTS= '${NODE}' -e 0 >/dev/null 2>&1 || true\nexit 0\n`, { mode: 0o755 });
  let n = 0;
  const stage = (repo: Repo) => () => {
    n++;
    fs.writeFileSync(path.join(repo.dir, `change-${n % 5}.txt`), `change ${n}\n`.repeat(1 + (n % 9)));
    repo.git(['add', '-A']);
  };
  const commit = (repo: Repo) => timeOf({ file: 'git', args: ['commit', '-q', '-m', 'bench commit'], cwd: repo.dir, env });
  const s = interleave(RUNS, [
    { name: 'floor', prepare: stage(base), run: commit(base) },
    { name: 'ours', prepare: stage(ours), run: commit(ours) },
    ...(caSet ? [{ name: 'floorNoCa', prepare: stage(baseNoCa), run: commit(baseNoCa) }] : []),
  ]);
  const diff = median(s.ours!) - median(s.floor!);
  const paired = s.ours!.map((x, i) => x - s.floor![i]!);
  const stored = storedEntries(path.join(ours.dir, '.flowforge'));
  const hl = hookLog(path.join(ours.dir, '.flowforge'));
  rows.push({
    id: '2',
    figure: 'git commit with our hook − same with node -e 0 hook',
    measured: signedMs(diff),
    floor: `${ms(median(s.floor!))} commit`,
    ratio: times(median(s.ours!) / median(s.floor!)),
    budget: '≤ +50 ms',
    result: hl.failed > 0 || stored.total !== RUNS + 1 ? 'error' : verdict(diff <= 50),
    note: `median of paired differences ${ms(median(paired))}; ${stored.total}/${RUNS + 1} commits stored by the hook`,
    data: { ours: summarize(s.ours!), floor: summarize(s.floor!), differenceOfMedians: diff, pairedDifferences: summarize(paired), stored, failedHookCalls: hl.failed },
  });
  if (caSet) {
    const clean = median(s.ours!) - median(s.floorNoCa!);
    rows.push({
      id: '2c',
      figure: 'git commit with our hook − same with node -e 0 hook, both without NODE_EXTRA_CA_CERTS',
      measured: signedMs(clean),
      floor: `${ms(median(s.floorNoCa!))} commit`,
      ratio: times(median(s.ours!) / median(s.floorNoCa!)),
      budget: '(like for like)',
      result: 'info',
      data: { ours: summarize(s.ours!), floor: summarize(s.floorNoCa!), differenceOfMedians: clean },
    });
  }
}

// ---- 3. status ----------------------------------------------------------------------------

function benchStatus(): void {
  log(`3 aggregate-status: ${RUNS} interleaved rounds`);
  const repo = makeRepo(path.join(work, 'repo-status'), env);
  okResult(runTimed(cli(['aggregate', '--source=git-commit'], repo.dir)), 'aggregate');
  const s = interleave(RUNS, [
    { name: 'floor', run: timeOf(nodeFloor) },
    { name: 'status', run: timeOk(cli(['aggregate-status'], repo.dir), 'aggregate-status') },
    { name: 'statusEsm', run: timeOk(cliEsm(['aggregate-status'], repo.dir), 'aggregate-status') },
    { name: 'statusSnapCa', run: timeOk(cliSnapshotCa(['aggregate-status'], repo.dir), 'aggregate-status') },
    ...(caSet ? [{ name: 'floorNoCa', run: timeOf({ ...nodeFloor, env: envNoCa }) }] : []),
  ]);
  const m = median(s.status!);
  const floor = median(s.floor!);
  rows.push({
    id: '3',
    figure: 'aggregate-status (small store)',
    measured: ms(m),
    floor: `${ms(floor)} node -e 0`,
    ratio: times(m / floor),
    budget: '≤ 1.50×',
    result: verdict(m / floor <= 1.5),
    data: { measured: summarize(s.status!), floor: summarize(s.floor!), ratio: m / floor },
  });
  infoRow('3r', 'aggregate-status, ESM entry, CA kept (as before)', s.statusEsm!, s.floor!, 'node -e 0', '(reference)');
  infoRow('3s', 'aggregate-status, snapshot, CA kept', s.statusSnapCa!, s.floor!, 'node -e 0', '(reference)');
  if (caSet) infoRow('3c', 'aggregate-status vs node -e 0 without NODE_EXTRA_CA_CERTS', s.status!, s.floorNoCa!, 'node -e 0, no CA', '(like for like)');
}

// ---- 4. growth with history ---------------------------------------------------------------

function benchScale(): void {
  const sizes = [10, 1000, 10_000];
  const runs = Math.max(3, Math.round(RUNS * 0.7));
  const stores: Record<number, string> = {};
  const generated: Record<number, number> = {};
  for (const n of sizes) {
    const c = cached(`history-${n}x50`, (target) => generateHistoryStore(target, n, 50));
    if (c.built) log(`4 generated a store with ${n} batches in ${ms(c.ms)} (cached for later runs)`);
    generated[n] = c.ms;
    stores[n] = path.join(work, `scale-${n}`);
    const t0 = performance.now();
    copyStore(c.path, stores[n]!);
    if (n === 10_000) log(`4 copied the 10,000-batch store in ${ms(performance.now() - t0)}`);
    const st = storedEntries(stores[n]!);
    if (st.batches !== n) throw new Error(`generated store reports ${st.batches} batches, expected ${n}`);
  }
  log(`4 status and hook path at 10 / 1,000 / 10,000 batches: ${runs} interleaved rounds`);
  const repo = makeRepo(path.join(work, 'repo-scale'), env);
  const dataEnv = (n: number): Env => ({ FLOWFORGE_DATA_PATH: stores[n]! });
  const s = interleave(runs, [
    { name: 'floor', run: timeOf(nodeFloor) },
    ...sizes.map((n) => ({ name: `status-${n}`, run: timeOk(cli(['aggregate-status'], repo.dir, dataEnv(n)), 'aggregate-status') })),
    ...sizes.map((n) => ({ name: `hook-${n}`, prepare: () => void repo.commit('bench commit'), run: timeOf(cli(HOOK_ARGS, repo.dir, dataEnv(n))) })),
  ]);
  const floor = median(s.floor!);
  for (const kind of ['status', 'hook'] as const) {
    const label = kind === 'status' ? 'aggregate-status' : 'hook path (fresh commit)';
    for (const n of sizes) {
      const m = median(s[`${kind}-${n}`]!);
      rows.push({
        id: `4${kind === 'status' ? 'a' : 'b'}`,
        figure: `${label} @ ${n.toLocaleString('en-US')} batches`,
        measured: ms(m),
        floor: `${ms(floor)} node -e 0`,
        ratio: times(m / floor),
        budget: '(growth)',
        result: 'info',
        data: { measured: summarize(s[`${kind}-${n}`]!), floor: summarize(s.floor!), batches: n, entries: n * 50 },
      });
    }
    const growth = median(s[`${kind}-10000`]!) / median(s[`${kind}-10`]!);
    const failed = kind === 'hook' ? sizes.reduce((k, n) => k + hookLog(stores[n]!).failed, 0) : 0;
    rows.push({
      id: `4${kind === 'status' ? 'a' : 'b'}`,
      figure: `${label}: 10,000 vs 10 batches`,
      measured: ms(median(s[`${kind}-10000`]!)),
      floor: `${ms(median(s[`${kind}-10`]!))} @10`,
      ratio: times(growth),
      budget: '≤ 1.30×',
      result: failed > 0 ? 'error' : verdict(growth <= 1.3),
      note: kind === 'hook' ? `${failed} failed hook calls` : undefined,
      data: { growth },
    });
  }
  details.scaleGeneration = generated;
}

// ---- 5. bulk ingest -----------------------------------------------------------------------

/** A node process that does the least a durable ingest must: read, parse each line, write once, fsync. */
const INGEST_FLOOR_SCRIPT = `
const fs = require('node:fs');
const [input, output] = process.argv.slice(1);
const text = fs.readFileSync(input, 'utf8');
const out = [];
for (const line of text.split('\\n')) if (line) out.push(JSON.parse(line));
const fd = fs.openSync(output, 'w');
fs.writeSync(fd, JSON.stringify(out));
fs.fdatasyncSync(fd);
fs.closeSync(fd);`;

/** Entries per part when an input must be split under the product's input cap (~60 MiB of our entries). */
const PART_BYTES = 60 * 1024 * 1024;

/** Whether a failed CLI run was the input-size cap refusing the whole input. */
function refusedAsTooLarge(r: { code: number | null; stdout: string }): boolean {
  return r.code === 2 && /"code":"E_INPUT"/.test(r.stdout) && /larger than|MiB|too large/i.test(r.stdout);
}

interface IngestOutcome {
  ms: number;
  aggregateMs: number;
  forceMs: number;
  peakRssKb: number | undefined;
  failure?: string;
  tooLarge?: boolean;
}

/** `aggregate --input=F` for each file in turn, then `aggregate-force`; checks that exactly `n` entries are stored. */
async function ingestFiles(files: string[], n: number, dataRoot: string, timeoutMs: number): Promise<IngestOutcome> {
  let aggregateMs = 0;
  let peak: number | undefined;
  let accepted = 0;
  for (const file of files) {
    const a = await runWithPeakRss(cli(['aggregate', `--input=${file}`, `--data-path=${dataRoot}`], work), { timeoutMs });
    aggregateMs += a.ms;
    if (a.peakRssKb !== undefined) peak = Math.max(peak ?? 0, a.peakRssKb);
    if (a.code !== 0) {
      return {
        ms: aggregateMs,
        aggregateMs,
        forceMs: 0,
        peakRssKb: peak,
        tooLarge: refusedAsTooLarge(a),
        failure: a.timedOut ? `timed out after ${ms(timeoutMs)}` : `exit ${a.code}${a.signal ? ` (${a.signal})` : ''}: ${(a.stdout || a.stderr).slice(0, 300)}`,
      };
    }
    accepted += okResult(a, 'aggregate --input').accepted;
  }
  const force = runTimed(cli(['aggregate-force', `--data-path=${dataRoot}`], work), timeoutMs);
  okResult(force, 'aggregate-force');
  const stored = storedEntries(dataRoot);
  // Kept until the benchmark ends (see figure 5 above): deleting here slows the next run's creates.
  if (accepted !== n || stored.pending !== 0 || stored.batchEntries !== n) throw new Error(`ingest of ${n}: accepted ${accepted}, stored ${JSON.stringify(stored)}`);
  return { ms: aggregateMs + force.ms, aggregateMs, forceMs: force.ms, peakRssKb: peak };
}

/** The cached input of `n` entries, split into parts of at most PART_BYTES (same ids as the whole). */
function inputParts(whole: string, n: number): string[] {
  const parts = Math.max(1, Math.ceil(fs.statSync(whole).size / PART_BYTES));
  const per = Math.ceil(n / parts);
  return Array.from({ length: parts }, (_, k) => cached(`input-${n}-part${k + 1}of${parts}.ndjson`, (t) => writeNdjson(t, Math.min(per, n - k * per), `in${n}`, k * per)).path);
}

async function benchIngest(): Promise<void> {
  const plan: Array<{ n: number; reps: number; timeoutMs: number }> = [
    { n: 10_000, reps: quick ? 3 : 5, timeoutMs: 60_000 },
    { n: 100_000, reps: quick ? 1 : 5, timeoutMs: 180_000 },
    ...(quick ? [] : [{ n: 1_000_000, reps: 1, timeoutMs: 420_000 }]),
  ];
  for (const { n, reps, timeoutMs } of plan) {
    const input = cached(`input-${n}.ndjson`, (target) => writeNdjson(target, n, `in${n}`));
    if (input.built) log(`5 wrote ${n.toLocaleString('en-US')} NDJSON entries in ${ms(input.ms)} (cached)`);
    log(`5 ingest of ${n.toLocaleString('en-US')} entries: ${reps} interleaved round(s)`);
    const ours: IngestOutcome[] = [];
    const floors: number[] = [];
    let files = [input.path];
    let refusedWhole: string | undefined;
    let failure: string | undefined;
    for (let rep = 0; rep < reps && !failure; rep++) {
      const floorOut = path.join(work, `ingest-floor-${n}.json`);
      const f = runTimed({ file: NODE, args: ['-e', INGEST_FLOOR_SCRIPT, input.path, floorOut], cwd: work, env }, timeoutMs);
      fs.rmSync(floorOut, { force: true });
      if (f.code === 0) floors.push(f.ms);
      const dataRoot = path.join(work, `ingest-${n}-${rep}`);
      let r = await ingestFiles(files, n, dataRoot, timeoutMs);
      if (r.tooLarge && files.length === 1) {
        // The product refuses one input this large: measure the same entries in parts under its cap.
        refusedWhole = r.failure;
        files = inputParts(input.path, n);
        log(`5 one --input of ${n.toLocaleString('en-US')} was refused (input cap); measuring ${files.length} sequential calls instead`);
        r = await ingestFiles(files, n, dataRoot, timeoutMs);
      }
      if (r.failure) failure = r.failure;
      else ours.push(r);
    }
    // The figure is the import call (durable when it returns); with the force after it, in the note.
    const m = median(ours.map((o) => o.aggregateMs));
    const withForce = median(ours.map((o) => o.ms));
    const floor = median(floors);
    const rate = n / (m / 1000);
    const isBudget = n === 100_000;
    const how = files.length > 1 ? ` in ${files.length} calls` : '';
    rows.push({
      id: '5',
      figure: `bulk ingest --input of ${n.toLocaleString('en-US')}${how}`,
      measured: failure ? 'failed' : `${perSec(rate)} (${ms(m)})`,
      floor: `${perSec(n / (floor / 1000))} read+parse+fsync`,
      ratio: failure ? '—' : times(m / floor),
      budget: isBudget ? '≥ 100,000/s' : '(growth)',
      result: failure ? (isBudget ? 'MISS' : 'error') : isBudget ? verdict(rate >= 100_000 && files.length === 1) : 'info',
      note:
        (refusedWhole ? `ONE call was refused (${refusedWhole.replace(/\s+/g, ' ').slice(0, 160)}); measured as ${files.length} sequential calls; ` : '') +
        (failure ?? `then aggregate-force ${ms(median(ours.map((o) => o.forceMs)))}: ${perSec(n / (withForce / 1000))} with it; peak RSS ${mb(ours[0]?.peakRssKb)}`),
      data: { entries: n, calls: files.length, refusedWhole, aggregateMs: ours.length ? summarize(ours.map((o) => o.aggregateMs)) : undefined, totalMs: ours.length ? summarize(ours.map((o) => o.ms)) : undefined, entriesPerSecond: rate, entriesPerSecondWithForce: n / (withForce / 1000), floorMs: floors.length ? summarize(floors) : undefined, runs: ours, failure },
    });
  }
}

// ---- 6. one flush, in process -------------------------------------------------------------

async function benchFlush(): Promise<void> {
  const iterations = quick ? 200 : 300;
  log(`6 in-process flush of 50 entries: ${iterations} interleaved with the bare-I/O floor`);
  const root = path.join(work, 'flush');
  const dataRoot = path.join(root, '.flowforge');
  fs.mkdirSync(root);
  const logs = createMemoryLogger();
  const ctx: HandlerContext = {
    now: Date.now,
    cwd: root,
    env: {},
    projectRoot: root,
    dataRoot,
    config: v.parse(ConfigSchema, {}),
    configFile: undefined,
    fs: createNodeFsPort(),
    log: logs,
    logFor: () => logs,
    git: () => Promise.reject(new Error('no git in the flush benchmark')),
    sleep: (t: number) => new Promise((resolve) => setTimeout(resolve, t)),
    readStdin: async () => Buffer.alloc(0),
  };
  const floorDir = path.join(root, 'floor');
  fs.mkdirSync(floorDir);
  const floorJournal = fs.openSync(path.join(floorDir, 'journal.log'), 'a');
  let seq = 0;
  const nextEntries = (): Entry[] => Array.from({ length: 50 }, () => benchEntry('flush', seq++));

  const flushMs: number[] = [];
  const storeOpMs: number[] = [];
  const floorMs: number[] = [];
  const ours = async () => {
    const entries = nextEntries();
    const t0 = performance.now();
    await withStore(ctx, async (store) => {
      const { accepted } = store.ingest(entries);
      if (accepted.length !== 50) throw new Error(`ingest accepted ${accepted.length} of 50`);
      const t = performance.now();
      const outcome = await store.flush();
      flushMs.push(performance.now() - t);
      if (outcome.flushed.length !== 1 || outcome.flushed[0]!.entryCount !== 50) throw new Error(`expected one 50-entry batch, got ${JSON.stringify(outcome)}`);
    });
    storeOpMs.push(performance.now() - t0);
  };
  const floor = () => {
    const entries = nextEntries();
    const t0 = performance.now();
    const id = `batch_${Date.now()}_${seq.toString(16).padStart(8, '0')}`;
    fs.writeSync(floorJournal, `00000000 ${JSON.stringify({ t: 'i', batches: [{ b: id, from: seq - 50, to: seq - 1 }] })}\n`);
    fs.fdatasyncSync(floorJournal);
    const file = path.join(floorDir, `${id}.json`);
    const fd = fs.openSync(`${file}.tmp`, 'w', 0o600);
    fs.writeSync(fd, JSON.stringify({ batchId: id, entries }));
    fs.fsyncSync(fd);
    fs.closeSync(fd);
    fs.renameSync(`${file}.tmp`, file);
    const dfd = fs.openSync(floorDir, 'r');
    fs.fsyncSync(dfd);
    fs.closeSync(dfd);
    fs.writeSync(floorJournal, `00000000 ${JSON.stringify({ t: 'c', batches: [{ b: id }] })}\n`);
    fs.fdatasyncSync(floorJournal);
    floorMs.push(performance.now() - t0);
  };
  for (let i = -5; i < iterations; i++) {
    if (i % 2 === 0) {
      await ours();
      floor();
    } else {
      floor();
      await ours();
    }
    if (i === -1) {
      flushMs.length = 0;
      storeOpMs.length = 0;
      floorMs.length = 0;
    }
  }
  fs.closeSync(floorJournal);
  const p99 = quantile(flushMs, 0.99);
  rows.push({
    id: '6a',
    figure: 'one flush of 50 entries, in-process, p99',
    measured: ms(p99),
    floor: `${ms(quantile(floorMs, 0.99))} bare I/O p99`,
    ratio: times(p99 / quantile(floorMs, 0.99)),
    budget: '≤ 5 ms',
    result: verdict(p99 <= 5),
    note: `p50 ${ms(median(flushMs))} (floor p50 ${ms(median(floorMs))}); ${flushMs.length} flushes`,
    data: { flushMs: summarize(flushMs), floorMs: summarize(floorMs) },
  });
  rows.push({
    id: '6b',
    figure: 'whole store op (lock, open, ingest 50, flush, close), p99',
    measured: ms(quantile(storeOpMs, 0.99)),
    floor: `${ms(quantile(floorMs, 0.99))} bare I/O p99`,
    ratio: times(quantile(storeOpMs, 0.99) / quantile(floorMs, 0.99)),
    budget: '(info)',
    result: 'info',
    note: `p50 ${ms(median(storeOpMs))}, p90 ${ms(quantile(storeOpMs, 0.9))}; ${storeOpMs.filter((x) => x > 20).length}/${storeOpMs.length} ops over 20 ms (a journal compaction into the id index every 256 committed entries, i.e. every ~5 ops)`,
    data: { storeOpMs: summarize(storeOpMs) },
  });
}

// ---- 7. concurrency -----------------------------------------------------------------------

async function benchConcurrency(): Promise<void> {
  const concurrency = 50;
  const perProcess = quick ? 5 : 20;
  const total = concurrency * perProcess;
  log(`7 ${total} single-entry aggregate calls, ${concurrency} at a time, between two floor rounds`);
  const dataRoot = path.join(work, 'concurrency');
  const floorA = await runPool(total, concurrency, () => nodeFloor);
  const ours = await runPool(total, concurrency, (i) => cli(['aggregate', `--entry=${JSON.stringify(benchEntry('conc', i))}`, `--data-path=${dataRoot}`], work));
  const floorB = await runPool(total, concurrency, () => nodeFloor);
  // Like for like: the floor without NODE_EXTRA_CA_CERTS, which the bin drops for aggregate.
  const floorNoCa = caSet ? await runPool(total, concurrency, () => ({ ...nodeFloor, env: envNoCa })) : undefined;
  let acked = 0;
  const failures: string[] = [];
  for (const r of ours.runs) {
    try {
      if (okResult(r, 'aggregate --entry').accepted === 1) acked++;
      else failures.push(`accepted ≠ 1: ${r.stdout.slice(0, 200)}`);
    } catch (error) {
      failures.push((error as Error).message.slice(0, 300));
    }
  }
  const stored = storedEntries(dataRoot);
  const failureCodes = new Map<string, number>();
  for (const f of failures) {
    const code = /"code":"(E_[A-Z_]+)"/.exec(f)?.[1] ?? 'other';
    failureCodes.set(code, (failureCodes.get(code) ?? 0) + 1);
  }
  const floor = (floorA.wallMs + floorB.wallMs) / 2;
  const ratio = ours.wallMs / floor;
  rows.push({
    id: '7',
    figure: `${concurrency} procs × ${perProcess} single-entry aggregate (${total} calls)`,
    measured: ms(ours.wallMs),
    floor: `${ms(floor)} ${total}× node -e 0`,
    ratio: times(ratio),
    budget: '≤ 1.25×, all acked',
    result: verdict(ratio <= 1.25 && acked === total && stored.total === total),
    note: `acknowledged ${acked}/${total}${failureCodes.size ? ` (failed: ${[...failureCodes].map(([c, k]) => `${k}× ${c}`).join(', ')})` : ''}; stored ${stored.total}; per call p50 ${ms(median(ours.runs.map((r) => r.ms)))} p99 ${ms(quantile(ours.runs.map((r) => r.ms), 0.99))}; floors ${ms(floorA.wallMs)} / ${ms(floorB.wallMs)}`,
    data: { total, acked, failureCodes: Object.fromEntries(failureCodes), stored, wallMs: ours.wallMs, floorWallMs: [floorA.wallMs, floorB.wallMs], perCallMs: summarize(ours.runs.map((r) => r.ms)), floorPerCallMs: summarize(floorA.runs.map((r) => r.ms)), failures: failures.slice(0, 10) },
  });
  if (floorNoCa) {
    rows.push({
      id: '7c',
      figure: `${concurrency} procs × ${perProcess} aggregate vs node -e 0 without NODE_EXTRA_CA_CERTS`,
      measured: ms(ours.wallMs),
      floor: `${ms(floorNoCa.wallMs)} ${total}× node -e 0, no CA`,
      ratio: times(ours.wallMs / floorNoCa.wallMs),
      budget: '(like for like)',
      result: 'info',
      data: { wallMs: ours.wallMs, floorWallMs: floorNoCa.wallMs },
    });
  }
}

// ---- 8. streamed ingest, peak RSS ---------------------------------------------------------

async function benchStream(): Promise<void> {
  const n = quick ? 100_000 : 1_000_000;
  const input = cached(`input-${n}.ndjson`, (target) => writeNdjson(target, n, `in${n}`));
  log(`8 streamed ingest of ${n.toLocaleString('en-US')} entries through stdin (peak RSS)`);
  const floor = await runWithPeakRss(nodeFloor, { timeoutMs: 30_000 });
  const dataRoot = path.join(work, 'stream');
  const r = await runWithPeakRss(cli(['aggregate', '--input=-', `--data-path=${dataRoot}`], work), { stdinFile: input.path, timeoutMs: quick ? 120_000 : 420_000 });
  let failure: string | undefined;
  let accepted: number | undefined;
  if (r.code !== 0) {
    let error: { code?: string; message?: string } = {};
    try {
      error = JSON.parse(r.stdout).error ?? {};
    } catch {
      /* not JSON */
    }
    failure = r.timedOut ? `timed out after ${ms(r.ms)}` : `exit ${r.code}${r.signal ? ` ${r.signal}` : ''} ${error.code ?? ''}: ${(error.message ?? r.stderr).slice(0, 200)}`;
  } else accepted = okResult(r, 'aggregate --input=-').accepted;
  // Kept until the benchmark ends, as in figure 5 (deleting 20,000 files slows later creates).
  let part: { entries: number; peakRssKb: number | undefined; ms: number; code: number | null } | undefined;
  if (refusedAsTooLarge(r)) {
    // Refused whole: what does the largest input it does take (one part under the cap) cost?
    const first = inputParts(input.path, n)[0]!;
    const entries = fs.readFileSync(first, 'utf8').split('\n').filter(Boolean).length;
    const p = await runWithPeakRss(cli(['aggregate', '--input=-', `--data-path=${dataRoot}-part`], work), { stdinFile: first, timeoutMs: 300_000 });
    part = { entries, peakRssKb: p.peakRssKb, ms: p.ms, code: p.code };
    failure = `${failure ?? ''}; one part of ${entries.toLocaleString('en-US')} entries (${mb(fs.statSync(first).size / 1024)}) streamed: exit ${p.code}, peak RSS ${mb(p.peakRssKb)}, ${ms(p.ms)}`;
  }
  const peakMb = r.peakRssKb === undefined ? NaN : r.peakRssKb / 1024;
  rows.push({
    id: '8',
    figure: `streamed ingest of ${n.toLocaleString('en-US')} via --input=-, peak RSS${quick ? ' (quick: 100k)' : ''}`,
    measured: failure ? 'refused/failed' : mb(r.peakRssKb),
    floor: `${mb(floor.peakRssKb)} node -e 0`,
    ratio: !failure && floor.peakRssKb && r.peakRssKb ? times(r.peakRssKb / floor.peakRssKb) : '—',
    budget: '≤ 200 MB',
    result: failure ? 'MISS' : verdict(peakMb <= 200),
    note: failure ? `FAILED: ${failure} (peak RSS before it ended ${mb(r.peakRssKb)})` : `accepted ${accepted}; ${ms(r.ms)} = ${perSec(n / (r.ms / 1000))}; RSS via ${r.rssSource}`,
    data: { entries: n, peakRssKb: r.peakRssKb, floorPeakRssKb: floor.peakRssKb, ms: r.ms, accepted, failure, part, rssSource: r.rssSource },
  });
}

// ---- 11. report over 1M entries ----------------------------------------------------------

async function benchReportGroup(): Promise<void> {
  const n = quick ? 100_000 : 1_000_000;
  log(`11 aggregate-report --by=day over ${n.toLocaleString('en-US')} stored entries (store generated once, cached)`);
  const floor = median(Array.from({ length: 5 }, timeOf(nodeFloor)));
  const { benchReport } = await import('./report-bench.js');
  const r = await benchReport({ entries: n, workDir: cacheDir(), cli: CLI, runs: quick ? 2 : 3 });
  rows.push({
    id: '11',
    figure: `aggregate-report --by=day over ${n.toLocaleString('en-US')} entries (${(n / 50).toLocaleString('en-US')} batch files)`,
    measured: ms(r.ms),
    floor: `${ms(floor)} node -e 0`,
    ratio: times(r.ms / floor),
    budget: 'a few seconds (≤ 5 s)',
    result: verdict(r.ms <= 5_000),
    note: `${perSec(r.entriesPerSecond)}; peak RSS ${r.peakRssMb === undefined ? '—' : `${r.peakRssMb.toFixed(0)} MB`}; totals ${r.totals.entries} entries / ${r.totals.commits} commits`,
    data: { ...r, floorMs: floor },
  });
}

// ---- 9. recovery pass ---------------------------------------------------------------------

function benchRecovery(): void {
  const count = 1000;
  const template = cached(`recovery-${count}x50`, (target) => generateRecoveryStore(target, count, 50));
  if (template.built) log(`9 generated ${count} failed batches in ${ms(template.ms)} (cached)`);
  const runs = quick ? 1 : 3;
  log(`9 aggregate-recover over ${count} failed batches: ${runs} interleaved round(s)`);
  const dataRoot = path.join(work, 'recovery');
  const results: any[] = [];
  const s = interleave(
    runs,
    [
      { name: 'floor', run: timeOf(nodeFloor) },
      {
        name: 'recover',
        prepare: () => copyStore(template.path, dataRoot),
        run: () => {
          const r = runTimed(cli(['aggregate-recover', `--data-path=${dataRoot}`], work), 120_000);
          const result = okResult(r, 'aggregate-recover');
          if (result.succeeded !== count) throw new Error(`recovered ${result.succeeded} of ${count}: ${JSON.stringify(result).slice(0, 300)}`);
          results.push(result);
          return r.ms;
        },
      },
    ],
    0,
  );
  const m = median(s.recover!);
  rows.push({
    id: '9',
    figure: `aggregate-recover over ${count} failed batches (50 entries each)`,
    measured: ms(m),
    floor: `${ms(median(s.floor!))} node -e 0`,
    ratio: times(m / median(s.floor!)),
    budget: '≤ 3 s',
    result: verdict(m <= 3000),
    note: `${results[0]?.succeeded ?? 0} recovered per pass; ${ms(m / count)} per batch`,
    data: { measured: summarize(s.recover!), floor: summarize(s.floor!) },
  });
}

// ---- 10. batchSize "auto" -----------------------------------------------------------------

function benchAuto(): void {
  if (!v.safeParse(ConfigSchema, { batchSize: 'auto' }).success) {
    rows.push({
      id: '10',
      figure: 'batchSize "auto" (small vs large entries)',
      measured: '—',
      floor: '—',
      ratio: '—',
      budget: '~64 KB files, 10–500 entries',
      result: 'TODO',
      note: 'TODO: the config schema does not accept batchSize "auto" yet; this row measures it (files per 10k entries, bytes per file, ingest time vs batchSize 50) once it does',
    });
    return;
  }
  log('10 batchSize "auto" vs 50 for small and large entries');
  const n = 10_000;
  const measure = (label: string, batchSize: number | 'auto', bigNote: boolean) => {
    const dir = path.join(work, `auto-${label}`);
    fs.mkdirSync(dir, { recursive: true });
    const config = path.join(dir, 'flowforge.config.json');
    fs.writeFileSync(config, JSON.stringify({ batchSize }));
    const input = path.join(dir, 'input.ndjson');
    fs.writeFileSync(
      input,
      Array.from({ length: n }, (_, i) => {
        const e = benchEntry(`auto-${label}`, i);
        return JSON.stringify(bigNote ? { ...e, metadata: { ...e.metadata, note: 'x'.repeat(4000) } } : { entryId: e.entryId, userId: e.userId, action: e.action, timestamp: e.timestamp });
      }).join('\n') + '\n',
    );
    const dataRoot = path.join(dir, 'data');
    const a = runOk(cli(['aggregate', `--input=${input}`, `--config=${config}`, `--data-path=${dataRoot}`], dir), 'aggregate (auto)', 120_000);
    const f = runOk(cli(['aggregate-force', `--config=${config}`, `--data-path=${dataRoot}`], dir), 'aggregate-force (auto)');
    const agg = path.join(dataRoot, 'aggregated');
    const files = fs.readdirSync(agg).filter((x) => /^batch_.*\.json$/.test(x));
    const bytes = files.reduce((sum, x) => sum + fs.statSync(path.join(agg, x)).size, 0);
    return { files: files.length, avgBytes: bytes / Math.max(1, files.length), entriesPerFile: n / Math.max(1, files.length), ms: a.ms + f.ms };
  };
  for (const [label, big] of [
    ['small', false],
    ['large', true],
  ] as const) {
    const fixed = measure(`${label}-50`, 50, big);
    const auto = measure(`${label}-auto`, 'auto', big);
    rows.push({
      id: '10',
      figure: `batchSize "auto", ${label} entries (${n.toLocaleString('en-US')})`,
      measured: `${auto.files} files, ${(auto.avgBytes / 1024).toFixed(1)} KB, ${auto.entriesPerFile.toFixed(0)}/file`,
      floor: `${fixed.files} files, ${(fixed.avgBytes / 1024).toFixed(1)} KB @50`,
      ratio: times(auto.ms / fixed.ms),
      budget: '~64 KB, 10–500/file',
      result: verdict(auto.entriesPerFile >= 10 && auto.entriesPerFile <= 500 && (auto.avgBytes <= 80 * 1024 || auto.entriesPerFile <= 10.5)),
      note: `ingest+force ${ms(auto.ms)} (auto) vs ${ms(fixed.ms)} (50)`,
      data: { auto, fixed },
    });
  }
}

// ---- P. profile of the hook path ----------------------------------------------------------

interface CpuProfile {
  nodes: Array<{ id: number; callFrame: { functionName: string; url: string }; children?: number[] }>;
  samples: number[];
  timeDeltas: number[];
  startTime: number;
  endTime: number;
}

/** Self time (ms) per package / project file / runtime bucket of one `.cpuprofile`. */
function selfTimeByOwner(profile: CpuProfile): Map<string, number> {
  const owner = new Map<number, string>();
  const projectUrl = pathToFileURL(PROJECT_ROOT).href + '/';
  for (const node of profile.nodes) {
    const { url, functionName } = node.callFrame;
    let key: string;
    if (!url) key = functionName.startsWith('(') ? functionName : '(native)';
    else if (url.startsWith('node:')) key = url.startsWith('node:internal/modules') ? 'node:internal/modules (module loader)' : url.replace(/^(node:internal\/[^/]+).*$/, '$1');
    else if (url.includes('/node_modules/')) key = url.slice(url.lastIndexOf('/node_modules/') + 14).split('/').slice(0, url.includes('/node_modules/@') ? 2 : 1).join('/');
    else if (url.startsWith(projectUrl)) key = url.slice(projectUrl.length);
    else key = url;
    owner.set(node.id, key);
  }
  const self = new Map<string, number>();
  profile.samples.forEach((id, i) => {
    const key = owner.get(id) ?? '?';
    self.set(key, (self.get(key) ?? 0) + (profile.timeDeltas[i] ?? 0) / 1000);
  });
  return self;
}

function benchProfile(): void {
  const repo = makeRepo(path.join(work, 'repo-profile'), env);
  okResult(runTimed(cli(['aggregate', '--source=git-commit'], repo.dir)), 'aggregate');

  // (a) CPU profile of the hook path, 3 runs, fresh commit each.
  log('P cpu profile of the hook path (3 runs)');
  const profDir = path.join(work, 'cpu-prof');
  fs.mkdirSync(profDir);
  const runs = 3;
  let wall = 0;
  for (let i = 0; i < runs; i++) {
    repo.commit('profiled commit');
    const r = runTimed({ file: NODE, args: ['--cpu-prof', `--cpu-prof-dir=${profDir}`, '--cpu-prof-interval=200', CLI, ...HOOK_ARGS], cwd: repo.dir, env });
    if (r.code !== 0) throw new Error(`profiled hook run: exit ${r.code}`);
    wall += r.ms;
  }
  const total = new Map<string, number>();
  let profiledMs = 0;
  for (const f of fs.readdirSync(profDir).filter((x) => x.endsWith('.cpuprofile'))) {
    const profile = JSON.parse(fs.readFileSync(path.join(profDir, f), 'utf8')) as CpuProfile;
    profiledMs += (profile.endTime - profile.startTime) / 1000;
    for (const [k, x] of selfTimeByOwner(profile)) total.set(k, (total.get(k) ?? 0) + x);
  }
  const cpuTop = [...total.entries()]
    .map(([owner, x]) => ({ owner, selfMs: Math.round((x / runs) * 10) / 10 }))
    .sort((a, b) => b.selfMs - a.selfMs)
    .slice(0, 15);
  details.cpuProfile = { entry: 'ESM build (node dist/src/bridge/cli.js), NODE_EXTRA_CA_CERTS kept', runs, meanWallMs: wall / runs, meanProfiledMs: profiledMs / runs, topSelfTime: cpuTop };

  // (a2) the same from the startup snapshot, as the installed hook starts it (no NODE_EXTRA_CA_CERTS).
  if (fs.existsSync(BLOB)) {
    log('P cpu profile of the hook path from the startup snapshot (3 runs)');
    const snapDir = path.join(work, 'cpu-prof-snapshot');
    fs.mkdirSync(snapDir);
    let snapWall = 0;
    let snapProfiled = 0;
    for (let i = 0; i < runs; i++) {
      repo.commit('profiled commit (snapshot)');
      const r = runTimed({ file: NODE, args: ['--cpu-prof', `--cpu-prof-dir=${snapDir}`, '--cpu-prof-interval=200', '--snapshot-blob', BLOB, '--', ...HOOK_ARGS], cwd: repo.dir, env: envNoCa });
      if (r.code !== 0) throw new Error(`profiled snapshot hook run: exit ${r.code}`);
      snapWall += r.ms;
    }
    const snapTotal = new Map<string, number>();
    for (const f of fs.readdirSync(snapDir).filter((x) => x.endsWith('.cpuprofile'))) {
      const profile = JSON.parse(fs.readFileSync(path.join(snapDir, f), 'utf8')) as CpuProfile;
      snapProfiled += (profile.endTime - profile.startTime) / 1000;
      for (const [k, x] of selfTimeByOwner(profile)) snapTotal.set(k, (snapTotal.get(k) ?? 0) + x);
    }
    details.cpuProfileSnapshot = {
      entry: 'startup snapshot (node --snapshot-blob dist/snapshot/provider-bridge.blob), NODE_EXTRA_CA_CERTS dropped; the profile starts after the snapshot is deserialized',
      runs,
      meanWallMs: snapWall / runs,
      meanProfiledMs: snapProfiled / runs,
      topSelfTime: [...snapTotal.entries()].map(([owner, x]) => ({ owner, selfMs: Math.round((x / runs) * 10) / 10 })).sort((a, b) => b.selfMs - a.selfMs).slice(0, 15),
    };
  }

  // (b) module load times: dynamic import() timed in a fresh process.
  log('P module load times (hook order and each alone)');
  const resolve = (spec: string) => (spec.startsWith('dist/') ? pathToFileURL(path.join(PROJECT_ROOT, spec)).href : import.meta.resolve(spec));
  const hookOrder = [
    'dist/src/bridge/host.js',
    'dist/plugins/aggregation/index.js',
    'dist/plugins/aggregation/handlers/aggregate.js',
    'dist/plugins/aggregation/entry.js',
    'valibot',
    'dist/src/config/paths.js',
    'dist/src/config/load.js',
    'cosmiconfig',
    'dist/plugins/aggregation/sources/git-commit.js',
    'dist/src/core/git-client.js',
    'simple-git',
    'dist/plugins/aggregation/aggregator.js',
  ];
  const alone = ['valibot', 'cosmiconfig', 'simple-git', 'write-file-atomic', 'node-schedule', 'dist/src/bridge/host.js', 'dist/plugins/aggregation/entry.js', 'dist/plugins/aggregation/aggregator.js', 'dist/plugins/aggregation/handlers/aggregate.js', 'dist/src/config/load.js', 'dist/src/config/schema.js', 'dist/src/core/git-client.js'];
  const script = path.join(work, 'module-load.mjs');
  fs.writeFileSync(
    script,
    `const specs = JSON.parse(process.argv[2]);
const out = [];
const t0 = performance.now();
for (const [name, url] of specs) { const t = performance.now(); await import(url); out.push([name, performance.now() - t]); }
process.stdout.write(JSON.stringify({ out, total: performance.now() - t0 }));\n`,
  );
  const reps = quick ? 3 : 7;
  const load = (list: string[]) => {
    const r = runOk({ file: NODE, args: [script, JSON.stringify(list.map((s) => [s, resolve(s)]))], cwd: work, env }, 'module-load script');
    return JSON.parse(r.stdout) as { out: Array<[string, number]>; total: number };
  };
  const orderSamples: Record<string, number[]> = {};
  const orderTotals: number[] = [];
  const aloneSamples: Record<string, number[]> = {};
  for (let i = 0; i < reps; i++) {
    const res = load(hookOrder);
    orderTotals.push(res.total);
    for (const [name, t] of res.out) (orderSamples[name] ??= []).push(t);
    for (const spec of alone) (aloneSamples[spec] ??= []).push(load([spec]).out[0]![1]);
  }
  const round = (x: number) => Math.round(x * 10) / 10;
  details.moduleLoad = {
    reps,
    hookOrder: hookOrder.map((spec) => ({ module: spec, incrementalMs: round(median(orderSamples[spec]!)) })),
    hookOrderTotalMs: round(median(orderTotals)),
    alone: alone.map((spec) => ({ module: spec, ms: round(median(aloneSamples[spec]!)) })),
    note: 'incrementalMs: time of that import() given everything above it is already loaded (0 = already loaded by an earlier module); alone: in a fresh process with nothing else loaded',
  };

  // (c) git processes per hook call, counted by a PATH shim.
  const realGit = execFileSync('sh', ['-c', 'command -v git'], { env, encoding: 'utf8' }).trim();
  const shimDir = path.join(work, 'git-shim');
  fs.mkdirSync(shimDir);
  const shimLog = path.join(work, 'git-shim.log');
  fs.writeFileSync(path.join(shimDir, 'git'), `#!/bin/sh\nprintf '%s\\n' "$*" >> '${shimLog}'\nexec '${realGit}' "$@"\n`, { mode: 0o755 });
  repo.commit('counted commit');
  fs.rmSync(shimLog, { force: true });
  runOk(cli(HOOK_ARGS, repo.dir, { PATH: `${shimDir}:${env.PATH ?? ''}` }), 'hook with git shim');
  const gitCalls = fs.existsSync(shimLog) ? fs.readFileSync(shimLog, 'utf8').trim().split('\n').filter(Boolean) : [];
  details.gitSpawnsPerHook = { count: gitCalls.length, calls: gitCalls };

  // (d) the hook path in phases: the same steps the host takes, timed one by one in a fresh
  // process (a generated script, so a change in these internal APIs shows up here as a failed
  // trace, never as a broken build).
  log('P hook path phase trace');
  const trace = path.join(work, 'phase-trace.mjs');
  fs.writeFileSync(trace, PHASE_TRACE_SCRIPT);
  const urls = Object.fromEntries(
    Object.entries({
      host: 'dist/src/bridge/host.js',
      paths: 'dist/src/config/paths.js',
      load: 'dist/src/config/load.js',
      gitClient: 'dist/src/core/git-client.js',
      gitCommit: 'dist/plugins/aggregation/sources/git-commit.js',
      entry: 'dist/plugins/aggregation/entry.js',
      aggregator: 'dist/plugins/aggregation/aggregator.js',
      fsPort: 'dist/src/core/fs-port.js',
      logger: 'dist/src/core/logger.js',
    }).map(([k, spec]) => [k, resolve(spec)]),
  );
  const phaseSamples: Record<string, number[]> = {};
  const wallSamples: number[] = [];
  try {
    for (let i = 0; i < reps; i++) {
      repo.commit('traced commit');
      const r = runOk({ file: NODE, args: [trace, JSON.stringify(urls)], cwd: repo.dir, env }, 'phase trace');
      wallSamples.push(r.ms);
      const phases = JSON.parse(r.stdout) as Array<[string, number]>;
      for (const [name, t] of phases) (phaseSamples[name] ??= []).push(t);
    }
    const phases = Object.entries(phaseSamples).map(([phase, xs]) => ({ phase, ms: round(median(xs)) }));
    const lastAt = phases.find((p) => p.phase === 'script end (since process start)')?.ms ?? NaN;
    details.phaseTrace = { reps, phases, wallMs: round(median(wallSamples)), afterScriptEndMs: round(median(wallSamples) - lastAt) };
  } catch (error) {
    details.phaseTrace = { error: (error as Error).message.slice(0, 400) };
  }
}

/**
 * Replays the host's steps for `aggregate --source=git-commit` with the product's own modules
 * (argv[2]: their URLs), printing `[phase, ms]` pairs. Mirrors src/bridge/host.ts runHost +
 * createContext and handlers/aggregate.ts run.
 */
const PHASE_TRACE_SCRIPT = `const boot = performance.now();
const u = JSON.parse(process.argv[2]);
const out = [['node bootstrap until the script runs', boot]];
let t = performance.now();
const step = (name) => { const now = performance.now(); out.push([name, now - t]); t = now; };
const host = await import(u.host); step('import host.js (cli.js static graph: fs-port, write-file-atomic, logger, …)');
const registry = await host.createDefaultRegistry(); step('createDefaultRegistry (plugin manifest)');
const handler = await registry.lookup('aggregate').load(); step('load the aggregate handler (valibot, entry, aggregator, journal, lock…)');
const cwd = process.cwd(); const env = process.env;
const paths = await import(u.paths); const { projectRoot } = paths.findProjectRoot(cwd, env); step('find the project root');
const { loadConfig } = await import(u.load);
const loaded = await loadConfig({ projectRoot, cacheDir: paths.resolveConfigCacheDir({ cwd, env, projectRoot }), cwd }); step('load config (cosmiconfig import + search, no config file)');
const { createGitClient } = await import(u.gitClient); const git = await createGitClient(cwd, env, { cwd }); step('create the git client (simple-git import)');
const facts = await git.headCommit(); step('git: HEAD commit facts (spawn)');
const { commitEntry } = await import(u.gitCommit); const { validateEntries } = await import(u.entry);
const entries = validateEntries([commitEntry(facts)], { now: Date.now(), maxClockSkew: loaded.config.maxClockSkew, redactKeys: loaded.config.privacy.redactKeys }); step('validate the entry');
const { withStore } = await import(u.aggregator); const { createNodeFsPort } = await import(u.fsPort); const { createFileLogger } = await import(u.logger);
const dataRoot = paths.resolveDataRoot({ cwd, env, projectRoot, configDataPath: loaded.config.dataPath });
const log = createFileLogger(dataRoot + '/logs', 'aggregation', Date.now);
const ctx = { now: Date.now, cwd, env, projectRoot, dataRoot, config: loaded.config, configFile: loaded.file, fs: createNodeFsPort(), log, logFor: () => log,
  git: async () => git, sleep: (ms) => new Promise((r) => setTimeout(r, ms)), readStdin: async () => Buffer.alloc(0) };
step('build the context');
await withStore(ctx, async (store) => { store.ingest(entries); await store.flush(); }); step('withStore: lock, open journal + index, append + fdatasync, flush policy, metrics.json durable write, unlock');
log.info('hook ok', { action: 'aggregate', durationMs: 0 }); step('log line');
out.push(['script end (since process start)', performance.now()]);
process.stdout.write(JSON.stringify(out));
`;

// ---- run ----------------------------------------------------------------------------------

const runners: Record<Group, () => void | Promise<void>> = {
  hook: benchHook,
  commit: benchCommit,
  status: benchStatus,
  scale: benchScale,
  ingest: benchIngest,
  flush: benchFlush,
  concurrency: benchConcurrency,
  stream: benchStream,
  recovery: benchRecovery,
  auto: benchAuto,
  report: benchReportGroup,
  profile: benchProfile,
};

log(`FlowForge Aggregation benchmark${quick ? ' (quick)' : ''}: ${[...selected].join(', ')}; scratch ${work}`);
for (const group of GROUPS) {
  if (!selected.has(group)) continue;
  try {
    await runners[group]();
  } catch (error) {
    const message = (error as Error).message ?? String(error);
    log(`${group} failed: ${message}`);
    rows.push({ id: group, figure: `${group} (not measured)`, measured: '—', floor: '—', ratio: '—', budget: '—', result: 'error', note: message.slice(0, 400) });
  }
}

// ---- print and save -----------------------------------------------------------------------

function printTable(): void {
  const header = ['#', 'figure', 'measured', 'floor', 'ratio', 'budget', 'result'];
  const body = rows.map((r) => [r.id, r.figure, r.measured, r.floor, r.ratio, r.budget, r.result]);
  const widths = header.map((h, i) => Math.max(h.length, ...body.map((b) => b[i]!.length)));
  const line = (cells: string[]) => cells.map((c, i) => c.padEnd(widths[i]!)).join(' │ ');
  console.log('\n' + line(header));
  console.log(widths.map((w) => '─'.repeat(w)).join('─┼─'));
  for (const b of body) console.log(line(b));
  const notes = rows.filter((r) => r.note);
  if (notes.length) {
    console.log('\nNotes:');
    for (const r of notes) console.log(`  ${r.id.padEnd(4)} ${r.figure}: ${r.note}`);
  }
  const cpu = details.cpuProfile as { meanWallMs: number; meanProfiledMs: number; topSelfTime: Array<{ owner: string; selfMs: number }> } | undefined;
  for (const [label, prof] of [
    ['ESM build', cpu],
    ['startup snapshot, as the installed hook runs it', details.cpuProfileSnapshot as typeof cpu],
  ] as const) {
    if (!prof) continue;
    console.log(`\nHook path CPU profile, ${label} (self time, mean of 3 runs; wall ${ms(prof.meanWallMs)}, profiled ${ms(prof.meanProfiledMs)}):`);
    for (const t of prof.topSelfTime) console.log(`  ${t.selfMs.toFixed(1).padStart(7)} ms  ${t.owner}`);
  }
  const ml = details.moduleLoad as { hookOrder: Array<{ module: string; incrementalMs: number }>; hookOrderTotalMs: number; alone: Array<{ module: string; ms: number }> } | undefined;
  if (ml) {
    console.log(`\nModule load, hook order (incremental import() ms, median; total ${ms(ml.hookOrderTotalMs)}):`);
    for (const m of ml.hookOrder) console.log(`  ${m.incrementalMs.toFixed(1).padStart(7)} ms  ${m.module}`);
    console.log('Module load, each alone in a fresh process:');
    for (const m of ml.alone) console.log(`  ${m.ms.toFixed(1).padStart(7)} ms  ${m.module}`);
  }
  const pt = details.phaseTrace as { phases?: Array<{ phase: string; ms: number }>; wallMs?: number; afterScriptEndMs?: number; error?: string } | undefined;
  if (pt?.phases) {
    console.log(`\nHook path phases (median ms; whole process ${ms(pt.wallMs ?? NaN)}, of which ${ms(pt.afterScriptEndMs ?? NaN)} after the last step: exit + spawn):`);
    for (const p of pt.phases) console.log(`  ${p.ms.toFixed(1).padStart(7)} ms  ${p.phase}`);
  } else if (pt?.error) console.log(`\nHook path phase trace failed: ${pt.error}`);
  const gs = details.gitSpawnsPerHook as { count: number; calls: string[] } | undefined;
  if (gs) console.log(`\ngit processes per hook call: ${gs.count}${gs.calls.map((c) => `\n  git ${c}`).join('')}`);
}

printTable();
const report = {
  tool: 'flowforge-aggregation bench',
  startedAt: new Date(started).toISOString(),
  durationMs: Date.now() - started,
  options: { quick, groups: [...selected], runs: RUNS },
  machine: { node: process.version, platform: `${os.platform()} ${os.release()}`, arch: os.arch(), cpus: os.cpus().length, cpuModel: os.cpus()[0]?.model, memoryMb: Math.round(os.totalmem() / 2 ** 20) },
  rows,
  details,
};
fs.mkdirSync(path.dirname(outFile), { recursive: true });
fs.writeFileSync(outFile, JSON.stringify(report, null, 2) + '\n');
console.log(`\nFigures written to ${outFile} (${((Date.now() - started) / 1000).toFixed(0)} s)`);
if (opts.keep) console.log(`Scratch folder kept: ${work}`);
else fs.rmSync(work, { recursive: true, force: true });
