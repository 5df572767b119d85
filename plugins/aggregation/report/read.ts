/**
 * Reads every acknowledged entry a report counts, without the store lock and without writing.
 *
 * Local scope, in this order (the order entries move in, so an entry moving while we read is
 * met at least once, and the entry-id dedupe makes it exactly once):
 *   1. `aggregated/inbox/*.ndjson`      acknowledged while the store was busy (inbox.ts)
 *   2. the journal's pending entries    (journal.ts readPendingSnapshot)
 *   3. `aggregated/recovery/*.failed.json`  failed batches awaiting retry: acknowledged data the
 *      recovery pass will write, so billing sees them
 *   4. `aggregated/batch_*.json`         batch files (immutable once written)
 * Team scope adds `team/<clone id>/batch_*.json`: other clones' batch files as `aggregate-sync`
 * materializes them (same batch file format). Every entry read is passed on, repeats included:
 * the accumulator (summarize.ts) counts each entry id once — the same commit imported by two
 * clones is one entry.
 *
 * Not counted, but reported: abandoned batches (`recovery/abandoned/`, given up by the recovery
 * pass) and quarantined files (`recovery/errors/`).
 *
 * A file that cannot be trusted (not JSON, wrong shape, checksum or entryCount mismatch, a
 * newer format version, unreadable) is never skipped silently: it is listed in `problems`, and
 * the action refuses to report (a bill from partial data is worse than none). A file that
 * disappears between the listing and the read moved on (inbox merged, failed batch recovered)
 * and is met again later in the order above.
 */
import * as path from 'node:path';
import type { HandlerContext } from '../../../src/core/context.js';
import type { ErrorDetail } from '../../../src/core/errors.js';
import { BATCH_MESSAGES, readBatchFile, type BatchProblem, type BatchRead } from '../batch-store.js';
import { MAX_DURATION_MS, MIN_TIMESTAMP_MS } from '../entry.js';
import { inboxDir } from '../inbox.js';
import { readPendingSnapshot } from '../journal.js';
import { batchIdOfName, storeLayout } from '../layout.js';
import type { Entry } from '../types.js';
import type { StoredAt } from './summarize.js';

/** `<data root>/team/`: one folder per other clone, written by `aggregate-sync`. */
export const teamDir = (dataRoot: string): string => storeLayout(dataRoot).team;

/**
 * File names read: batch, failed and abandoned batch files under either batch id form (an id
 * `aggregate-migrate` kept from the older format counts like any other: see batchIdOfName);
 * temp files of an atomic write do not match.
 */
const BATCH_FILE = (name: string) => batchIdOfName(name, '.json') !== undefined;
const FAILED_FILE = (name: string) => batchIdOfName(name, '.failed.json') !== undefined;
const ABANDONED_FILE = (name: string) => batchIdOfName(name, '.abandoned.json') !== undefined;
const INBOX_FILE = (name: string) => /^\d{13}-\d+-[0-9a-f]{8}\.ndjson$/.test(name);

export type ReportScope = 'local' | 'team';

/** Where the counted entries came from (files and entries read, before dedupe). */
export interface ReportSources {
  /** Local batch files read. */
  batchFiles: number;
  /** Failed batches in `aggregated/recovery/` read. */
  failedBatches: number;
  /** Entries pending in the journal and the inbox. */
  pendingEntries: number;
  /** Clone folders under `team/` (team scope; 0 in local scope). */
  teamClones: number;
  /** Batch files read under `team/`. */
  teamBatchFiles: number;
}

export interface ReadOutcome {
  sources: ReportSources;
  /** Abandoned batches and their entries: not counted. `entries` counts readable files only. */
  abandoned: { batches: number; entries: number };
  /** Files in `recovery/errors/`: not counted. */
  quarantinedFiles: number;
  /** Things the reader noticed that do not stop the report (listed in the result). */
  warnings: string[];
  /** Files that could not be trusted, and why; the caller refuses to report when there is any. */
  problems: ReportProblem[];
}

/**
 * Why a file stopped the report, which says what fixes it: `unreadable` (the file system refused:
 * permissions, disk), `legacy` (older batch format: `aggregate-migrate`), `newer-version`
 * (upgrade the product), `damaged` (not JSON, wrong shape, checksum or entryCount mismatch:
 * `aggregate-validate --repair`).
 */
export type ReportProblemKind = 'unreadable' | 'legacy' | 'newer-version' | 'damaged';

export interface ReportProblem {
  kind: ReportProblemKind;
  /** `path` relative to the data root; `message` says what is wrong with the file. */
  detail: ErrorDetail;
}

const PROBLEM_TEXT: Record<BatchProblem, string> = {
  unreadable: 'cannot be read',
  'not-json': 'is not valid JSON',
  'bad-shape': 'is not a batch file (no batchId or entries)',
  checksum: 'does not match its checksum (entries changed after it was written)',
  'entry-count': 'entryCount does not match its entries',
  'newer-version': 'was written by a newer version of FlowForge Aggregation (format major version > 2); upgrade to report on it',
  legacy: 'is in the older batch format; run provider-bridge aggregate-migrate to upgrade it',
};

/** Whether an entry of a batch file is in the form the product stores (see readBatch). */
function isStoredForm(entry: Entry): boolean {
  const ts = entry.timestamp as unknown;
  if (typeof ts !== 'number' || !Number.isInteger(ts) || ts < MIN_TIMESTAMP_MS) return false;
  const duration = (entry.metadata as { duration?: unknown } | undefined)?.duration;
  return duration === undefined || (typeof duration === 'number' && Number.isInteger(duration) && duration >= 0 && duration <= MAX_DURATION_MS);
}

/** The message for a batch file `read` found a problem in: the shared wording of batch-store.ts for versions. */
function problemText(file: string, read: Exclude<BatchRead, { batch: unknown }>): string {
  if (read.problem === 'newer-version') return BATCH_MESSAGES.newerVersion(file, read.version);
  if (read.problem === 'legacy') return BATCH_MESSAGES.legacy(file, read.version);
  return PROBLEM_TEXT[read.problem];
}

/**
 * Calls `visit` for every entry of the sources of `scope`, in the order of the module comment
 * (an id may come more than once), with where it is stored: the container's flush time
 * (`timestamp` of a batch or failed batch file; `Infinity` for the journal and each inbox file,
 * whose entries are not flushed yet) and a number per container (each file, the journal). A file that cannot be trusted is listed in `problems` and its
 * entries are not visited; the caller must not report then. Throws only when a folder cannot be
 * listed or the journal cannot be read (the port's error).
 */
export function readReportEntries(ctx: HandlerContext, scope: ReportScope, visit: (entry: Entry, stored: StoredAt) => void): ReadOutcome {
  const layout = storeLayout(ctx.dataRoot);
  const outcome: ReadOutcome = {
    sources: { batchFiles: 0, failedBatches: 0, pendingEntries: 0, teamClones: 0, teamBatchFiles: 0 },
    abandoned: { batches: 0, entries: 0 },
    quarantinedFiles: 0,
    warnings: [],
    problems: [],
  };
  const rel = (file: string) => path.relative(ctx.dataRoot, file);
  const unreadable = (file: string, error: unknown) =>
    outcome.problems.push({ kind: 'unreadable', detail: { path: rel(file), message: `${PROBLEM_TEXT.unreadable}: ${(error as Error).message}` } });
  let containers = 0;
  const pending = (): StoredAt => ({ at: Number.POSITIVE_INFINITY, container: containers++ });
  const list = (dir: string, matches: (name: string) => boolean) =>
    ctx.fs
      .readdir(dir)
      .filter(matches)
      .sort()
      .map((name) => path.join(dir, name));

  // 1. Inbox, then 2. journal: the inbox is merged into the journal, never the other way.
  for (const file of list(inboxDir(layout), INBOX_FILE)) {
    let textValue: string;
    try {
      textValue = ctx.fs.readFile(file).toString('utf8');
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'ENOENT') unreadable(file, error);
      continue; // ENOENT: merged meanwhile, so in the journal now
    }
    let entries: Entry[];
    try {
      entries = textValue
        .split('\n')
        .filter((line) => line !== '')
        .map((line) => JSON.parse(line) as Entry);
    } catch {
      outcome.problems.push({ kind: 'damaged', detail: { path: rel(file), message: 'is not valid NDJSON' } });
      continue;
    }
    outcome.sources.pendingEntries += entries.length;
    const stored = pending();
    for (const entry of entries) visit(entry, stored);
  }
  const journal = readPendingSnapshot(layout.journal, ctx.fs);
  outcome.sources.pendingEntries += journal.pending.length;
  const journalStored = pending();
  for (const entry of journal.pending) visit(entry, journalStored);
  if (journal.badRecords > 0) {
    outcome.warnings.push(`${journal.badRecords} journal record(s) failed their checksum and were not counted; the next aggregate call moves them to ${rel(layout.errors)}/`);
  }

  /** Reads, verifies and visits one batch file; false when it vanished or could not be trusted. */
  const readBatch = (file: string): boolean => {
    let read: ReturnType<typeof readBatchFile>;
    try {
      read = readBatchFile(ctx.fs, file);
    } catch (error) {
      unreadable(file, error);
      return false;
    }
    if (read === undefined) return false; // ENOENT: a failed batch recovered meanwhile (met again as a batch file)
    if ('problem' in read) {
      const kind = read.problem === 'legacy' || read.problem === 'newer-version' ? read.problem : 'damaged';
      outcome.problems.push({ kind, detail: { path: rel(file), message: problemText(rel(file), read) } });
      return false;
    }
    // A checksum proves a file intact, not sane: a hand-made or foreign batch could hold input
    // forms or absurd values that would bill nonsense (1970 dates, millions of hours).
    const insane = read.batch.entries.findIndex((e) => !isStoredForm(e));
    if (insane !== -1) {
      outcome.problems.push({ kind: 'damaged', detail: { path: rel(file), message: `entries[${insane}] is not a stored entry (timestamp in integer epoch ms since 2000, metadata.duration 0–7 days in whole ms)` } });
      return false;
    }
    const flushedAt = read.batch.timestamp;
    const stored: StoredAt = { at: typeof flushedAt === 'number' && Number.isFinite(flushedAt) ? flushedAt : 0, container: containers++ };
    for (const entry of read.batch.entries) visit(entry, stored);
    return true;
  };
  // 3. Failed batches, then 4. batch files: the recovery pass turns the first into the second,
  // so batch files are listed only once the failed ones were read.
  for (const file of list(layout.recovery, FAILED_FILE)) if (readBatch(file)) outcome.sources.failedBatches++;
  for (const file of list(layout.aggregated, BATCH_FILE)) if (readBatch(file)) outcome.sources.batchFiles++;

  if (scope === 'team') {
    const dir = teamDir(ctx.dataRoot);
    const clones = ctx.fs
      .readdir(dir)
      .filter((name) => !name.startsWith('.') && ctx.fs.stat(path.join(dir, name))?.isDirectory())
      .sort();
    outcome.sources.teamClones = clones.length;
    if (clones.length === 0) outcome.warnings.push(`no team data in ${rel(dir)}/ yet (aggregate-sync materializes other clones' batch files there): team scope shows local data only`);
    for (const clone of clones) for (const file of list(path.join(dir, clone), BATCH_FILE)) if (readBatch(file)) outcome.sources.teamBatchFiles++;
  }

  for (const file of list(layout.abandoned, ABANDONED_FILE)) {
    outcome.abandoned.batches++;
    try {
      const read = readBatchFile(ctx.fs, file);
      if (read && 'batch' in read) outcome.abandoned.entries += read.batch.entryCount;
      else if (read) outcome.warnings.push(`${read.problem === 'newer-version' || read.problem === 'legacy' ? "" : `${rel(file)} `}${problemText(rel(file), read)}; its entries are not in abandoned.entries`);
    } catch (error) {
      outcome.warnings.push(`${rel(file)} ${PROBLEM_TEXT.unreadable} (${(error as Error).message}); its entries are not in abandoned.entries`);
    }
  }
  outcome.quarantinedFiles = ctx.fs.readdir(layout.errors).length;
  return outcome;
}
