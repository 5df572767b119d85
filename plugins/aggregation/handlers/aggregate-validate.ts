/**
 * `aggregate-validate`: a full check of the store (issue 3 item 7). Reads every batch file —
 * the one action allowed to, since it is an explicit full check — and reports:
 * - a batch file `aggregated/batch_*.json` that is empty, does not parse, has the wrong shape,
 *   a `checksum` or `entryCount` that does not match its entries (batch-store `readBatchFile`),
 *   or a name that is not `<batchId>.json` with a well-formed batch id;
 * - the same for failed (`recovery/*.failed.json`) and abandoned
 *   (`recovery/abandoned/*.abandoned.json`) batches;
 * - an `entryId` in two places (two batches, a batch and a failed/abandoned batch, or a batch
 *   and the journal's pending entries), or twice in one batch;
 * - an entry in a batch that neither the id index nor the journal knows (a re-sent copy would
 *   not be caught as a duplicate);
 * - journal records quarantined by this open, and files already in `recovery/errors/`
 *   (quarantined earlier: a human should look at them, then move them out of the store);
 * - temp files left by an interrupted write-file-atomic write, as `notes` (harmless debris of a
 *   killed writer: they do not fail validation);
 * - a file of a newer batch format (greater major version) or of the older format: reported
 *   with batch-store's BATCH_MESSAGES, never moved by `--repair` (a newer file is not ours to
 *   judge; an older one is upgraded by `aggregate-migrate`).
 * Problems are listed with the path relative to the data root. When there is any, it throws a
 * CorruptError (exit 1) whose `details` are the problems; otherwise it returns `ok: true`.
 * Applies the flush triggers first, as every action does (SPEC §5).
 */
import * as path from 'node:path';
import * as v from 'valibot';
import type { HandlerContext } from '../../../src/core/context.js';
import { CorruptError } from '../../../src/core/errors.js';
import type { HandlerDefinition } from '../../../src/core/handler.js';
import { quarantineFile, withStore, type OpenStore } from '../aggregator.js';
import { BATCH_MESSAGES, readBatchFile, type BatchProblem } from '../batch-store.js';
import { BATCH_ID_PATTERN, LEGACY_BATCH_ID_PATTERN } from '../layout.js';
import { TEMP_FILE_PATTERN, tempFileDirs } from '../store-files.js';
import type { BatchFile } from '../types.js';

/** One finding: `path` relative to the data root. */
export interface ValidateProblem {
  path: string;
  message: string;
}

/** Result of `aggregate-validate` (only returned when `ok`; otherwise the problems are the CorruptError's details). */
export interface AggregateValidateResult {
  ok: boolean;
  /** Batch files that verified, and the entries in them. */
  batches: number;
  entries: number;
  /** Failed and abandoned batches that verified. */
  failed: number;
  abandoned: number;
  /** Entries pending in the journal. */
  pending: number;
  problems: ValidateProblem[];
  /**
   * Harmless findings that do not fail validation: temp files left by an interrupted atomic
   * write (debris of a killed writer; `aggregate-cleanup` removes them once older than --age).
   */
  notes: ValidateProblem[];
}

const PROBLEM_TEXT: Record<Exclude<BatchProblem, 'newer-version' | 'legacy'>, string> = {
  unreadable: 'cannot be read',
  'not-json': 'is not valid JSON',
  'bad-shape': 'is not a batch document (batchId or entries missing)',
  checksum: 'checksum does not match its entries',
  'entry-count': 'entryCount does not match the number of entries',
};

type Kind = 'batch' | 'failed' | 'abandoned';
const SUFFIX: Record<Kind, string> = { batch: '.json', failed: '.failed.json', abandoned: '.abandoned.json' };

/**
 * Checks the store opened by `withStore` (the open already quarantined bad journal records and
 * resolved an interrupted flush). Pure apart from reads through ctx.fs; never throws for a bad
 * file (it becomes a problem), only for a folder that cannot be listed.
 */
export function validateStore(ctx: HandlerContext, store: OpenStore, options: { repair?: boolean } = {}): AggregateValidateResult {
  const { layout } = store;
  const problems: ValidateProblem[] = [];
  const rel = (file: string) => path.relative(ctx.dataRoot, file);
  const notes: ValidateProblem[] = [];
  const result: AggregateValidateResult = { ok: true, batches: 0, entries: 0, failed: 0, abandoned: 0, pending: store.journal.pending.length, problems, notes };
  /** entryId → path of the first file holding it. */
  const seen = new Map<string, string>();
  const batchIds = new Map<string, string>();
  const inBatches: string[] = [];

  /** Batch ids that have a file, usable or not (a bad file is reported as bad, not missing). */
  const present = new Set<string>();
  const check = (kind: Kind, dir: string, name: string) => {
    present.add(name.slice(0, name.length - SUFFIX[kind].length));
    const file = path.join(dir, name);
    const where = rel(file);
    // With --repair, an unusable file is moved to recovery/errors/ (never deleted), where
    // health and status count it and a person can look at it.
    const bad = (message: string) => {
      if (options.repair) {
        const moved = quarantineFile(ctx, layout, file);
        message += `; moved to ${rel(moved)}`;
      }
      problems.push({ path: where, message });
    };
    const st = ctx.fs.stat(file);
    if (st && st.isFile() && st.size === 0) {
      bad('empty file (0 bytes)');
      return;
    }
    let read: ReturnType<typeof readBatchFile>;
    try {
      read = readBatchFile(ctx.fs, file);
    } catch (error) {
      problems.push({ path: where, message: `cannot be read: ${(error as NodeJS.ErrnoException).code ?? (error as Error).message}` });
      return;
    }
    if (!read) return; // removed meanwhile
    if ('problem' in read) {
      if (read.problem === 'newer-version') problems.push({ path: where, message: BATCH_MESSAGES.newerVersion(where, read.version) });
      else if (read.problem === 'legacy') problems.push({ path: where, message: BATCH_MESSAGES.legacy(where, read.version) });
      else bad(PROBLEM_TEXT[read.problem]);
      return;
    }
    const batch: BatchFile = read.batch;
    // A file aggregate-migrate upgraded keeps the id the older format gave it.
    if (batch.migrated !== undefined && LEGACY_BATCH_ID_PATTERN.test(batch.batchId)) {
      if (name !== `${batch.batchId}${SUFFIX[kind]}`) problems.push({ path: where, message: `file name does not match its batchId ${batch.batchId}` });
    } else if (!BATCH_ID_PATTERN.test(batch.batchId)) problems.push({ path: where, message: `batchId ${JSON.stringify(batch.batchId)} is not a batch id (batch_<13 digits>_<8 hex>)` });
    else if (name !== `${batch.batchId}${SUFFIX[kind]}`) problems.push({ path: where, message: `file name does not match its batchId ${batch.batchId}` });
    const other = batchIds.get(batch.batchId);
    if (other) {
      const hint = kind === 'failed' ? `; it was already written — aggregate-recover --batch-id=${batch.batchId} removes the failed copy` : '';
      problems.push({ path: where, message: `batch ${batch.batchId} is also stored as ${other}${hint}` });
    } else batchIds.set(batch.batchId, where);
    if (kind === 'batch') {
      result.batches++;
      result.entries += batch.entryCount;
    } else result[kind]++;
    for (const entry of batch.entries) {
      const id = entry?.entryId;
      if (typeof id !== 'string') {
        problems.push({ path: where, message: 'an entry has no entryId' });
        continue;
      }
      const first = seen.get(id);
      if (first === undefined) {
        seen.set(id, where);
        inBatches.push(id);
      } else if (other === undefined) {
        problems.push({ path: where, message: first === where ? `entry ${id} appears twice in this batch` : `entry ${id} is also in ${first}` });
      }
    }
  };

  const list = (dir: string, suffix: string, exclude?: RegExp) =>
    ctx.fs
      .readdir(dir)
      .filter((n) => n.endsWith(suffix) && !(exclude && exclude.test(n)))
      .sort();
  for (const name of list(layout.aggregated, '.json').filter((n) => n.startsWith('batch_'))) check('batch', layout.aggregated, name);
  for (const name of list(layout.recovery, '.failed.json')) check('failed', layout.recovery, name);
  for (const name of list(layout.abandoned, '.abandoned.json')) check('abandoned', layout.abandoned, name);

  const journalFile = rel(path.join(layout.journal, 'journal.log'));
  for (const je of store.journal.pending) {
    const first = seen.get(je.entry.entryId);
    if (first !== undefined) problems.push({ path: journalFile, message: `pending entry ${je.entry.entryId} (seq ${je.seq}) is also in ${first}` });
  }
  const indexed = store.index.lookup(inBatches.filter((id) => !store.journal.hasId(id)));
  for (const id of inBatches) {
    if (!store.journal.hasId(id) && !indexed.has(id)) {
      problems.push({ path: seen.get(id)!, message: `entry ${id} is in neither the id index nor the journal: a re-sent copy would not be detected as a duplicate` });
    }
  }

  // Every batch the store recorded (index shards, journal commits) must still be a file: a
  // deleted or moved batch file is entries lost, and they could not even be sent again (their
  // ids are still known as duplicates).
  const recorded = new Map<string, number>();
  // Entry ids the index records per batch: a line torn by a full disk can name a batch that was
  // never written (its name cut short) while its entry is stored under the real name.
  const indexedIds = new Map<string, string[]>();
  for (const name of ctx.fs.readdir(layout.index).filter((n) => /^ids-[0-9a-f]{2}\.tsv$/.test(n))) {
    for (const line of ctx.fs.readFile(path.join(layout.index, name)).toString('utf8').split('\n')) {
      const tab = line.indexOf('\t');
      if (tab <= 0) continue;
      const batchId = line.slice(tab + 1);
      recorded.set(batchId, (recorded.get(batchId) ?? 0) + 1);
      const ids = indexedIds.get(batchId) ?? [];
      ids.push(line.slice(0, tab));
      indexedIds.set(batchId, ids);
    }
  }
  const fromJournal = new Set<string>();
  for (const c of store.journal.committed) {
    recorded.set(c.batchId, (recorded.get(c.batchId) ?? 0) + 1);
    fromJournal.add(c.batchId);
  }
  for (const [batchId, count] of [...recorded].sort()) {
    if (batchIds.has(batchId) || present.has(batchId) || !(BATCH_ID_PATTERN.test(batchId) || LEGACY_BATCH_ID_PATTERN.test(batchId))) continue;
    const ids = indexedIds.get(batchId) ?? [];
    if (!fromJournal.has(batchId) && ids.length > 0 && ids.every((id) => seen.has(id))) {
      notes.push({ path: rel(layout.index), message: `the id index names batch ${batchId}, which has no file, for ${ids.length} entr${ids.length === 1 ? 'y' : 'ies'} stored in other files (a torn index line, e.g. after a full disk; harmless)` });
      continue;
    }
    problems.push({ path: rel(path.join(layout.aggregated, `${batchId}.json`)), message: `batch ${batchId} is missing: ${count} entr${count === 1 ? 'y' : 'ies'} recorded in it are in no batch, failed or abandoned file` });
  }

  if (store.quarantine.badRecords > 0) {
    const where = store.quarantine.file ? rel(path.join(layout.errors, store.quarantine.file)) : rel(layout.errors);
    problems.push({ path: where, message: `${store.quarantine.badRecords} bad journal record(s) (${store.quarantine.badBytes} bytes) were quarantined now` });
  }
  const movedNow = new Set(problems.map((p) => /; moved to (.+)$/.exec(p.message)?.[1]).filter(Boolean));
  for (const name of ctx.fs.readdir(layout.errors).sort()) {
    if (name === store.quarantine.file || movedNow.has(rel(path.join(layout.errors, name)))) continue;
    problems.push({ path: rel(path.join(layout.errors, name)), message: 'quarantined file: inspect it, then move it out of the store' });
  }
  for (const dir of tempFileDirs(layout)) {
    for (const name of ctx.fs.readdir(dir).sort()) {
      if (!TEMP_FILE_PATTERN.test(name)) continue;
      notes.push({ path: rel(path.join(dir, name)), message: 'temp file left by an interrupted atomic write (harmless; aggregate-cleanup removes it)' });
    }
  }
  result.ok = problems.length === 0;
  return result;
}

const AggregateValidateInput = v.object({ repair: v.optional(v.boolean(), false) });

/** The `aggregate-validate` action. Throws CorruptError (exit 1) listing every problem, IoError (exit 1) when the store cannot be opened. */
export const aggregateValidate: HandlerDefinition<typeof AggregateValidateInput, AggregateValidateResult> = {
  name: 'aggregate-validate',
  summary: 'check every batch file, recovery file and the journal; exit 1 listing each problem',
  help: `Usage: provider-bridge aggregate-validate [--repair]

Reads every batch file in aggregated/ and every failed and abandoned batch in recovery/ and
checks: it parses, its checksum and entryCount match its entries, its name matches its
batchId, no entryId is stored twice (across batches, recovery files and the journal), every
stored entry is known to the duplicate index. Also reports journal records quarantined by
this check, files already in recovery/errors/, and leftover temp files.
With --repair, a batch, failed or abandoned file that cannot be used (empty, not JSON,
wrong checksum…) is moved to recovery/errors/ — never deleted — and reported as moved.
A file of a newer batch format, or of the older one (aggregate-migrate upgrades it), is
reported and never moved.
Exit 0 when clean; exit 1 (E_CORRUPT) with one detail per problem, paths relative to the
data root.`,
  options: { repair: { type: 'boolean' } },
  input: AggregateValidateInput,
  async run(input, ctx) {
    const result = await withStore(ctx, async (store) => {
      await store.flush();
      return validateStore(ctx, store, { repair: input.repair });
    });
    if (!result.ok) {
      throw new CorruptError(
        `The store in ${ctx.dataRoot} has ${result.problems.length} problem(s) (${result.batches} batch files, ${result.entries} entries checked). Entries are not lost: each problem names the file to look at.`,
        { details: result.problems.map((p) => ({ path: p.path, message: p.message })) },
      );
    }
    return result;
  },
  formatText: (r) =>
    `ok: ${r.batches} batch files, ${r.entries} entries, ${r.failed} failed, ${r.abandoned} abandoned, ${r.pending} pending — no problems` +
    r.notes.map((n) => `\nnote: ${n.path}: ${n.message}`).join(''),
};
