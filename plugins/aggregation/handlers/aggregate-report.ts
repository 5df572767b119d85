/**
 * `aggregate-report [--by=user|task|day|branch|action] [--since=DATE] [--until=DATE] [--tz=ZONE]
 * [--scope=local|team] [--format=json|text|csv|html] [--output=FILE]` (issue 6, part 1):
 * entries, commits and tracked time per user, task, day, branch or action, over every
 * acknowledged entry (report/read.ts for what is read, report/summarize.ts for the rules).
 *
 * Reading takes no lock and writes nothing in the store. Like every action it first applies the
 * age trigger (SPEC §5), but only if the store lock is free within {@link AGE_FLUSH_LOCK_MS}
 * and the store exists; a failure there is a warning, never a failed report (a read-only copy
 * of a store can still be reported on).
 *
 * `--output=FILE` writes the rendered document (in `--format`) to FILE atomically (temp file,
 * fsync, rename; 0600) — the one file this tool writes outside the data root, because the user
 * named it — and stdout then carries the JSON document with `output` set to FILE's absolute
 * path, whatever the format.
 */
import * as path from 'node:path';
import * as v from 'valibot';
import type { HandlerContext } from '../../../src/core/context.js';
import { CorruptError, IoError, UsageError } from '../../../src/core/errors.js';
import type { HandlerDefinition } from '../../../src/core/handler.js';
import { toIoError, withStore } from '../aggregator.js';
import { storeLayout } from '../layout.js';
import { readReportEntries, type ReportProblem, type ReportProblemKind, type ReportSources } from '../report/read.js';
import { renderCsv, renderHtml, renderText } from '../report/render.js';
import { createReportAccumulator, REPORT_BY, type DailyChart, type ReportBy, type ReportRow, type ReportTotals } from '../report/summarize.js';
import { assertBoundsOrder, formatBound, parseBound, parseReportZone } from '../report/time.js';
import type { FlushedBatch } from '../types.js';

/** How long the report waits for the store lock to apply the age trigger, ms; then it reads without. */
export const AGE_FLUSH_LOCK_MS = 250;

const REPORT_FORMATS = ['json', 'text', 'csv', 'html'] as const;

const AggregateReportInput = v.object({
  by: v.optional(v.picklist(REPORT_BY, `--by must be one of ${REPORT_BY.join(', ')}`), 'user'),
  since: v.optional(v.string()),
  until: v.optional(v.string()),
  tz: v.optional(v.string()),
  scope: v.optional(v.picklist(['local', 'team'], '--scope must be local or team'), 'local'),
  output: v.optional(v.pipe(v.string(), v.minLength(1, '--output needs a file name'))),
  // The host's global --format, read here to render for --output (the host checked its value).
  format: v.optional(v.picklist(REPORT_FORMATS, `--format must be one of ${REPORT_FORMATS.join(', ')}`), 'json'),
});

/**
 * Result of `aggregate-report`. Counts are entries; times are milliseconds; days `YYYY-MM-DD`.
 */
export interface AggregateReportResult {
  by: ReportBy;
  scope: 'local' | 'team';
  /** Zone of days for entries without their own UTC offset: `UTC`, `+02:00` or an IANA name. */
  timeZone: string;
  /** `since`/`until` as given (a day, or an ISO instant in UTC) or null; first/last day counted. */
  range: { since: string | null; until: string | null; firstDay: string | null; lastDay: string | null };
  /** One row per key, sorted by key (days chronologically). */
  rows: ReportRow[];
  totals: ReportTotals;
  sources: ReportSources;
  /** Not counted: abandoned batches, quarantined files, repeated ids, superseded session imports, entries out of range. */
  excluded: {
    abandonedBatches: number;
    abandonedEntries: number;
    quarantinedFiles: number;
    duplicates: number;
    supersededSessions: number;
    outOfRange: number;
  };
  warnings: string[];
  /** Batches the age trigger wrote before reading. */
  flushed: FlushedBatch[];
  /** ISO time of the report (the context clock). */
  generatedAt: string;
  dataRoot: string;
  /** Tracked time per day by task, for the chart: present with `--format=html` only. */
  daily?: DailyChart;
  /** Absolute path of the file written with `--output`. */
  output?: string;
}

/** The JSON document the host would print (stdout with `--output`, and the file for `--format=json`). */
const jsonDocument = (result: AggregateReportResult): string => JSON.stringify({ ok: true, action: 'aggregate-report', result });

/** Each format's document; the renderers load their libraries on first use. */
const renderers: Record<(typeof REPORT_FORMATS)[number], (r: AggregateReportResult) => string | Promise<string>> = {
  json: jsonDocument,
  text: renderText,
  csv: renderCsv,
  html: renderHtml,
};

/**
 * The `aggregate-report` action. Throws UsageError (exit 2) for a bad option, CorruptError
 * (exit 1) listing every untrusted file, IoError (exit 1) when `--output` cannot be written, a
 * store file cannot be read or a store folder cannot be listed (see problemsError).
 */
export const aggregateReport: HandlerDefinition<typeof AggregateReportInput, AggregateReportResult> = {
  name: 'aggregate-report',
  summary: 'entries, commits and tracked hours per user, task, day, branch or action (json, text, csv, html)',
  help: `Usage: provider-bridge aggregate-report [--by=user|task|day|branch|action] [--since=DATE]
         [--until=DATE] [--tz=ZONE] [--scope=local|team] [--format=json|text|csv|html] [--output=FILE]

Counts every acknowledged entry: batch files, failed batches awaiting retry, and entries still
pending in the journal and in the inbox (abandoned batches are reported, not counted). Each
entry id counts once; a work session the sessions source imported again with another duration
counts once, at its latest import (the one stored last).

  --by      grouping (default user); task = metadata.taskId, branch = metadata.branch,
            "(none)" when absent
  --since   first day (2026-03-01) or instant (2026-03-01T09:00:00+01:00), inclusive
  --until   last day or instant, inclusive
  --tz      zone of days for entries without their own offset (commits use their author's):
            UTC (default), +02:00, or an IANA name such as Europe/Berlin
  --scope   local (this clone) or team (plus other clones' batch files in team/, from aggregate-sync)
  --format  json (default), text (aligned table), csv (with a header), html (one self-contained
            page: chart of tracked hours per day by task, the table, the date range)
  --output  write the rendered report to FILE (atomically); stdout then carries the JSON document
            with "output" set to FILE's absolute path

Exit codes: 0 success; 2 bad option; 1 a store file could not be read (E_IO) or trusted (each
listed, with its fix: aggregate-migrate for the older format, aggregate-validate --repair when damaged).`,
  options: {
    by: { type: 'string' },
    since: { type: 'string' },
    until: { type: 'string' },
    tz: { type: 'string' },
    scope: { type: 'string' },
    output: { type: 'string' },
  },
  input: AggregateReportInput,
  async run(input, ctx) {
    const zone = parseReportZone(input.tz);
    const since = parseBound('--since', input.since);
    const until = parseBound('--until', input.until);
    assertBoundsOrder(since, until, input.since, input.until);
    const format = input.format;
    const output = input.output === undefined ? undefined : path.resolve(ctx.cwd, input.output);
    if (output !== undefined) {
      const dir = ctx.fs.stat(path.dirname(output));
      if (!dir?.isDirectory()) throw new UsageError(`--output ${input.output}: the folder ${path.dirname(output)} does not exist`, { details: [{ path: '--output', message: 'folder does not exist', value: input.output }] });
      if (ctx.fs.stat(output)?.isDirectory()) throw new UsageError(`--output ${input.output} is a folder; name a file`, { details: [{ path: '--output', message: 'is a folder', value: input.output }] });
    }

    const warnings: string[] = [];
    const flushed = await applyAgeTrigger(ctx, warnings);
    const accumulator = createReportAccumulator({ by: input.by, zone, since, until, redactKeys: ctx.config.privacy.redactKeys, daily: format === 'html' });
    let read: ReturnType<typeof readReportEntries>;
    try {
      read = readReportEntries(ctx, input.scope, (entry, stored) => accumulator.add(entry, stored));
    } catch (error) {
      throw toIoError(error, ctx.dataRoot);
    }
    if (read.problems.length > 0) throw problemsError(read.problems, ctx.dataRoot);
    const summary = accumulator.finish();
    const result: AggregateReportResult = {
      by: input.by,
      scope: input.scope,
      timeZone: zone.name,
      range: { since: formatBound(since), until: formatBound(until), firstDay: summary.firstDay, lastDay: summary.lastDay },
      rows: summary.rows,
      totals: summary.totals,
      sources: read.sources,
      excluded: {
        abandonedBatches: read.abandoned.batches,
        abandonedEntries: read.abandoned.entries,
        quarantinedFiles: read.quarantinedFiles,
        duplicates: summary.duplicates,
        supersededSessions: summary.supersededSessions,
        outOfRange: summary.outOfRange,
      },
      warnings: [...warnings, ...read.warnings],
      flushed,
      generatedAt: new Date(ctx.now()).toISOString(),
      dataRoot: ctx.dataRoot,
    };
    if (summary.daily) result.daily = summary.daily;
    if (output !== undefined) {
      const document = await renderers[format](result);
      try {
        ctx.fs.writeFileDurable(output, document);
      } catch (error) {
        const code = (error as NodeJS.ErrnoException).code ?? 'an error';
        throw new IoError(`Could not write the report to ${output}: ${code} (${(error as Error).message}). Nothing in the data root ${ctx.dataRoot} was changed.`, {
          cause: error,
          details: [{ path: '--output', message: (error as Error).message, value: input.output }],
        });
      }
      result.output = output;
    }
    return result;
  },
  formatText: (r) => (r.output ? jsonDocument(r) : renderText(r)),
  renderers: {
    csv: (r) => (r.output ? jsonDocument(r) : renderers.csv(r)),
    html: (r) => (r.output ? jsonDocument(r) : renderers.html(r)),
  },
};

/**
 * The error for files that stopped the report, saying what fixes each kind (read.ts
 * {@link ReportProblemKind}): IoError (`E_IO`, exit 1) when any file could not be read, naming
 * it; otherwise CorruptError (`E_CORRUPT`, exit 1) whose headline names `aggregate-migrate` for
 * older-format files, an upgrade for newer ones and `aggregate-validate --repair` for damaged
 * ones. `details` lists every file.
 */
function problemsError(problems: ReportProblem[], dataRoot: string): IoError | CorruptError {
  const of = (kind: ReportProblemKind) => problems.filter((p) => p.kind === kind).map((p) => p.detail);
  const unreadable = of('unreadable');
  const legacy = of('legacy');
  const newer = of('newer-version');
  const damaged = of('damaged');
  const fixes: string[] = [];
  if (legacy.length > 0) fixes.push(legacy.length === 1 ? legacy[0]!.message : `${legacy.length} files are in the older batch format (first: ${legacy[0]!.message})`);
  if (newer.length > 0) fixes.push(`${newer.length} file(s) were written by a newer version of FlowForge Aggregation: upgrade the product to report on them`);
  if (damaged.length > 0) fixes.push(`${damaged.length} file(s) are damaged: run provider-bridge aggregate-validate --repair to move damaged local files to aggregated/recovery/errors/`);
  const details = problems.map((p) => p.detail);
  if (unreadable.length > 0) {
    const first = unreadable[0]!;
    return new IoError(
      `Could not read ${unreadable.length === 1 ? first.path : `${unreadable.length} stored files (first: ${first.path})`} under ${dataRoot} (${first.message}), so no report was made and nothing was changed: ` +
        `check the file's permissions and the disk${fixes.length > 0 ? `; also ${fixes.join('; ')}` : ''}.`,
      { details },
    );
  }
  return new CorruptError(
    `${problems.length} stored file(s) under ${dataRoot} could not be trusted, so no report was made (a total without them would be wrong): ${fixes.join('; ')}.`,
    { details },
  );
}

/**
 * Applies the age trigger when the store exists and its lock is free within
 * {@link AGE_FLUSH_LOCK_MS}; returns the batches written. Never throws: a busy lock is skipped
 * silently (pending entries are read from the journal anyway), any other failure becomes a warning.
 */
async function applyAgeTrigger(ctx: HandlerContext, warnings: string[]): Promise<FlushedBatch[]> {
  if (!ctx.fs.stat(storeLayout(ctx.dataRoot).journal)?.isDirectory()) return [];
  try {
    return await withStore(
      ctx,
      async (store) => {
        const outcome = await store.flush();
        return [...store.resumed, ...outcome.flushed];
      },
      { lockTimeoutMs: AGE_FLUSH_LOCK_MS },
    );
  } catch (error) {
    if ((error as { code?: string }).code !== 'E_LOCKED') warnings.push(`the age trigger could not be applied before reading (${(error as Error).message}); pending entries are counted from the journal`);
    return [];
  }
}
