/**
 * `node dist/test/bench/report-bench.js [--entries=1000000] [--per-batch=50] [--runs=3] [--keep]`
 *
 * Benchmark of `aggregate-report` (issue 6, part 1: "a report over 1,000,000 entries finishes
 * within a few seconds"): a store of N entries is written directly in the store's formats —
 * batch files of `perBatch` entries (the default batchSize, 50: 20,000 files for 1M), an empty
 * journal — then a whole `provider-bridge aggregate-report --by=day` process is timed, median of
 * `runs`, with its peak RSS. The store is kept under `workDir` and reused by later calls with the
 * same size (it takes longer to write than to report on).
 *
 * The entries: 80 % `time-tracking` sessions (25 users, 200 tasks, 30 s – 3 h), 5 % of them a
 * re-import of a session that grew (the report counts each session once), 20 % commits with the
 * author's UTC offset, spread over one year.
 *
 * `benchReport` is exported for the main benchmark (bench.ts); a benchmark, never a test.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { makeBatch } from '../../plugins/aggregation/batch-store.js';
import { storeLayout } from '../../plugins/aggregation/layout.js';
import type { Entry } from '../../plugins/aggregation/types.js';
import { median, runWithPeakRss } from './harness.js';
import { CLI, NODE, assertOutsideProject, benchRoot, cleanEnv } from './fixtures.js';

export interface ReportBenchResult {
  entries: number;
  /** Median wall time of the whole process, ms. */
  ms: number;
  entriesPerSecond: number;
  /** Median of the runs' peak RSS, MB (undefined when it could not be read). */
  peakRssMb?: number;
  /** Every run, ms. */
  runsMs: number[];
  /** Totals the report printed (a check that it read everything). */
  totals: { entries: number; commits: number; trackedMs: number };
  /** Time spent writing the store in this call (0 when reused), ms. */
  generateMs: number;
}

const DAY_MS = 86_400_000;
const T0 = Date.UTC(2025, 0, 1);
const TZS = ['+0000', '+0100', '+0200', '-0500', '+0530', '-0800'];

/** Entry `i` of the generated store (deterministic). */
function reportEntry(i: number, n: number): Entry {
  const timestamp = T0 + Math.floor((i / n) * 365 * DAY_MS);
  const user = `dev-${i % 25}@example.com`;
  if (i % 5 === 0) {
    const sha = i.toString(16).padStart(40, '0');
    return { entryId: `commit:${sha}`, userId: user, action: 'commit', timestamp, metadata: { branch: i % 3 === 0 ? null : 'main', deletions: i % 40, filesChanged: 1 + (i % 7), insertions: i % 90, parents: [], sha, tz: TZS[i % TZS.length]! } };
  }
  // Every 20th session is a longer re-import of the session before it (same session id).
  const grown = i % 20 === 2;
  const sessionNo = grown ? i - 1 : i;
  const duration = 30_000 + (sessionNo % 360) * 30_000 + (grown ? 600_000 : 0);
  const sessionId = `s-${sessionNo}`;
  return {
    entryId: `session:dev-${sessionNo % 25}:${sessionId}:${duration}`,
    userId: `dev-${sessionNo % 25}@example.com`,
    action: 'time-tracking',
    timestamp: T0 + Math.floor((sessionNo / n) * 365 * DAY_MS),
    metadata: { duration, sessionId, taskId: `T-${sessionNo % 200}` },
  };
}

/** Writes the store for `n` entries into `dataRoot` (batch files of `perBatch`, an empty journal). */
function generateStore(dataRoot: string, n: number, perBatch: number): void {
  const layout = storeLayout(dataRoot);
  for (const dir of [layout.aggregated, layout.journal]) fs.mkdirSync(dir, { recursive: true, mode: 0o700 });
  fs.writeFileSync(path.join(layout.journal, 'journal.log'), '', { mode: 0o600 });
  for (let start = 0, b = 0; start < n; start += perBatch, b++) {
    const entries: Entry[] = [];
    for (let i = start; i < Math.min(n, start + perBatch); i++) entries.push(reportEntry(i, n));
    const at = T0 + b * 1000;
    const batchId = `batch_${String(at).padStart(13, '0')}_${(b >>> 0).toString(16).padStart(8, '0')}`;
    fs.writeFileSync(path.join(layout.aggregated, `${batchId}.json`), JSON.stringify(makeBatch(batchId, at, entries)), { mode: 0o600 });
  }
}

/**
 * Builds (or reuses) a store of `entries` entries under `workDir` and times `cli aggregate-report
 * --by=day` over it as a whole process, median of `runs` (default 3). Throws when a run fails.
 */
export async function benchReport(opts: { entries: number; workDir: string; cli: string; perBatch?: number; runs?: number }): Promise<ReportBenchResult> {
  const perBatch = opts.perBatch ?? 50;
  const dataRoot = path.join(opts.workDir, `report-store-${opts.entries}-${perBatch}`);
  const ready = path.join(dataRoot, '.bench-complete');
  let generateMs = 0;
  if (!fs.existsSync(ready)) {
    const started = performance.now();
    fs.rmSync(dataRoot, { recursive: true, force: true });
    generateStore(dataRoot, opts.entries, perBatch);
    fs.writeFileSync(ready, '');
    generateMs = performance.now() - started;
  }
  const env = cleanEnv(opts.workDir);
  const runsMs: number[] = [];
  const rss: number[] = [];
  let totals: ReportBenchResult['totals'] | undefined;
  for (let run = 0; run < (opts.runs ?? 3); run++) {
    const r = await runWithPeakRss({ file: NODE, args: [opts.cli, 'aggregate-report', '--by=day', `--data-path=${dataRoot}`], cwd: opts.workDir, env }, { timeoutMs: 300_000 });
    if (r.code !== 0) throw new Error(`aggregate-report failed (exit ${r.code}${r.timedOut ? ', timed out' : ''}): ${(r.stderr || r.stdout).slice(0, 600)}`);
    runsMs.push(r.ms);
    if (r.peakRssKb !== undefined) rss.push(r.peakRssKb / 1024);
    totals = (JSON.parse(r.stdout) as { result: { totals: ReportBenchResult['totals'] } }).result.totals;
  }
  const ms = median(runsMs);
  return { entries: opts.entries, ms, entriesPerSecond: Math.round(opts.entries / (ms / 1000)), peakRssMb: rss.length > 0 ? Math.round(median(rss)) : undefined, runsMs, totals: totals!, generateMs };
}

async function main(): Promise<void> {
  const { values } = parseArgs({ options: { entries: { type: 'string', default: '1000000' }, 'per-batch': { type: 'string', default: '50' }, runs: { type: 'string', default: '3' }, keep: { type: 'boolean' } } });
  const workDir = fs.mkdtempSync(path.join(benchRoot(), 'report-'));
  assertOutsideProject(workDir);
  try {
    const result = await benchReport({ entries: Number(values.entries), workDir, cli: CLI, perBatch: Number(values['per-batch']), runs: Number(values.runs) });
    process.stdout.write(
      `aggregate-report --by=day over ${result.entries.toLocaleString('en-US')} entries (${Math.ceil(result.entries / Number(values['per-batch'])).toLocaleString('en-US')} batch files): ` +
        `median ${(result.ms / 1000).toFixed(2)} s of ${result.runsMs.map((m) => (m / 1000).toFixed(2)).join(', ')} s; ` +
        `${result.entriesPerSecond.toLocaleString('en-US')} entries/s; peak RSS ${result.peakRssMb ?? '?'} MB; store written in ${(result.generateMs / 1000).toFixed(1)} s\n`,
    );
    process.stdout.write(`${JSON.stringify(result)}\n`);
  } finally {
    if (values.keep) process.stdout.write(`kept ${workDir}\n`);
    else fs.rmSync(workDir, { recursive: true, force: true });
  }
}

if (process.argv[1] && fileURLToPath(import.meta.url) === path.resolve(process.argv[1])) await main();
