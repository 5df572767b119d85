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
 *   not be caught as a duplicate), and an index shard with malformed lines (NUL or control
 *   bytes, bytes that are not UTF-8, an id longer than any entry id): the index is damaged;
 * - a batch the index or the journal records that has no file any more (deleted, or moved to
 *   `recovery/errors/`), listing the entry ids recorded in it;
 * - a batch released for re-import (see release.ts) whose entries are not all stored again,
 *   listing the ids still missing; and a file of a released batch back in the store;
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
 *
 * `--repair`, in this order, each step durable before the next (a kill anywhere, then a re-run
 * of `--repair`, finishes the job; `test/unit/repair-power-loss.test.ts`):
 *   1. an unusable batch, failed or abandoned file is moved to `recovery/errors/` (never deleted);
 *   2. every batch that is recorded (index or journal) but has no file left — moved in step 1,
 *      by the recovery pass, by an earlier repair killed before step 2, or deleted by hand — is
 *      released (release.ts, one journal record): its ids stop counting as stored, and the
 *      problem lists them with "re-import them from your source";
 *   3. when the index is damaged (an entry of a file it does not know, a malformed line), it is
 *      rebuilt (id-index.ts `rebuildIdIndex`: temp shards fsynced, renamed, folder fsynced) from
 *      the verified batch, failed and abandoned files, keeping the old lines of batches that
 *      have a file this check could not read (older or newer format) or that were released.
 *      Every id stored before the rebuild is stored after it, at every instant of it: a line it
 *      drops names a batch without a file, which step 2 released already, or an id that a file
 *      holds (and the rebuilt shard lists). The journal is not touched.
 * A quarantined copy of a released batch whose entries are all stored again is a note, not a
 * problem: after `--repair` and a re-import of the source, validation passes.
 */
import * as path from 'node:path';
import * as v from 'valibot';
import type { HandlerContext } from '../../../src/core/context.js';
import { CorruptError } from '../../../src/core/errors.js';
import type { HandlerDefinition } from '../../../src/core/handler.js';
import { quarantineFile, withStore, type OpenStore } from '../aggregator.js';
import { BATCH_MESSAGES, readBatchFile, type BatchProblem } from '../batch-store.js';
import { rebuildIdIndex, scanIdIndex } from '../id-index.js';
import type { ReleasedKind } from '../journal.js';
import { BATCH_ID_PATTERN, isBatchId, LEGACY_BATCH_ID_PATTERN } from '../layout.js';
import { quarantinedKind, recordedIds, releaseBatches } from '../release.js';
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
  /**
   * Entry ids recorded in a batch that is in no file and that are not stored again (released
   * now by `--repair`, or earlier): re-import them from your source. Sorted; [] when none.
   */
  missing: string[];
  /** With `--repair`: lines written by an index rebuild, or null when the index was not rebuilt. */
  rebuiltIndex: number | null;
}

const PROBLEM_TEXT: Record<Exclude<BatchProblem, 'newer-version' | 'legacy'>, string> = {
  unreadable: 'cannot be read',
  'not-json': 'is not valid JSON',
  'bad-shape': 'is not a batch document (batchId or entries missing)',
  checksum: 'checksum does not match its entries',
  'entry-count': 'entryCount does not match the number of entries',
};

type Kind = 'batch' | 'failed' | 'abandoned';
/** Added to a released batch's problem when the id index was damaged too (its list may miss ids). */
const INCOMPLETE_LIST = '. The id index was damaged too, so ids it lost are not in this list: re-import your whole source to be sure (entries already stored are counted as duplicates, not stored again)';

const SUFFIX: Record<Kind, string> = { batch: '.json', failed: '.failed.json', abandoned: '.abandoned.json' };

/**
 * Checks the store opened by `withStore` (the open already quarantined bad journal records and
 * resolved an interrupted flush). Reads through ctx.fs only, unless `repair` (then it moves,
 * releases and rebuilds as the module comment says); never throws for a bad file (it becomes a
 * problem), only for a folder that cannot be listed, a write of the repair that fails (the
 * port's error; run it again) or a lost store lock (LockedError).
 */
export async function validateStore(ctx: HandlerContext, store: OpenStore, options: { repair?: boolean } = {}): Promise<AggregateValidateResult> {
  const { layout } = store;
  const problems: ValidateProblem[] = [];
  const rel = (file: string) => path.relative(ctx.dataRoot, file);
  const notes: ValidateProblem[] = [];
  const missing: string[] = [];
  const result: AggregateValidateResult = { ok: true, batches: 0, entries: 0, failed: 0, abandoned: 0, pending: store.journal.pending.length, problems, notes, missing, rebuiltIndex: null };
  /** Index lines of the files that verified, for a rebuild. */
  const filePairs: Array<{ entryId: string; batchId: string }> = [];
  /**
   * Files of each batch id still in the store, usable or not (a bad file is reported as bad,
   * not missing); one moved aside by --repair no longer counts.
   */
  const filesLeft = new Map<string, number>();
  /** Batch ids of files moved aside by --repair now, with where they were. */
  const movedKind = new Map<string, ReleasedKind>();
  /** Batch ids with a file this check could not read as the current format (kept in a rebuild). */
  const unread = new Set<string>();
  /** entryId → path of the first file holding it. */
  const seen = new Map<string, string>();
  const batchIds = new Map<string, string>();
  const inBatches: string[] = [];

  const check = (kind: Kind, dir: string, name: string) => {
    const nameId = name.slice(0, name.length - SUFFIX[kind].length);
    filesLeft.set(nameId, (filesLeft.get(nameId) ?? 0) + 1);
    const file = path.join(dir, name);
    const where = rel(file);
    // With --repair, an unusable file is moved to recovery/errors/ (never deleted), where
    // health and status count it and a person can look at it.
    const bad = (message: string) => {
      if (options.repair) {
        const moved = quarantineFile(ctx, layout, file);
        message += `; moved to ${rel(moved)}`;
        filesLeft.set(nameId, filesLeft.get(nameId)! - 1);
        movedKind.set(nameId, kind);
      } else unread.add(nameId);
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
      unread.add(nameId);
      return;
    }
    if (!read) return; // removed meanwhile
    if ('problem' in read) {
      if (read.problem === 'newer-version' || read.problem === 'legacy') unread.add(nameId);
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
      filePairs.push({ entryId: id, batchId: batch.batchId });
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
  const pendingIds = new Set<string>();
  for (const je of store.journal.pending) {
    pendingIds.add(je.entry.entryId);
    const first = seen.get(je.entry.entryId);
    if (first !== undefined) problems.push({ path: journalFile, message: `pending entry ${je.entry.entryId} (seq ${je.seq}) is also in ${first}` });
  }
  const indexed = store.index.lookup(inBatches.filter((id) => !store.journal.hasId(id)));
  let unindexed = 0;
  for (const id of inBatches) {
    if (!store.journal.hasId(id) && !indexed.has(id)) {
      unindexed++;
      problems.push({ path: seen.get(id)!, message: `entry ${id} is in neither the id index nor the journal: a re-sent copy would not be detected as a duplicate${options.repair ? '' : ' (aggregate-validate --repair rebuilds the index)'}` });
    }
  }
  const scan = scanIdIndex(layout.index, ctx.fs);
  let malformed = 0;
  for (const shard of scan.shards) {
    const where = rel(path.join(layout.index, shard.name));
    if (shard.malformed > 0) {
      malformed += shard.malformed;
      problems.push({
        path: where,
        message: `index shard is damaged: ${shard.malformed} malformed line(s) (line ${shard.malformedLines.join(', ')}${shard.malformed > shard.malformedLines.length ? ', …' : ''})${options.repair ? '' : '; aggregate-validate --repair rebuilds the index from the batch files'}`,
      });
    }
    if (shard.torn > 0) notes.push({ path: where, message: `${shard.torn} line(s) without a tab, left by an index append that was killed mid-write (harmless: those ids were never acknowledged from it)` });
  }

  // Every batch the store recorded (index shards, journal commits) must still be a file: a
  // deleted or moved batch file is entries lost, and they could not even be sent again (their
  // ids are still known as duplicates) — until the batch is released.
  const released = store.journal.released;
  const recorded = new Set<string>(scan.byBatch.keys());
  const fromJournal = new Set<string>();
  for (const c of store.journal.committed) {
    recorded.add(c.batchId);
    fromJournal.add(c.batchId);
  }
  const toRelease: Array<{ batchId: string; kind: ReleasedKind }> = [];
  for (const batchId of [...recorded].sort()) {
    if ((filesLeft.get(batchId) ?? 0) > 0 || released.has(batchId) || !isBatchId(batchId)) continue;
    const ids = recordedIds(store, scan, batchId).sort();
    if (!fromJournal.has(batchId) && !movedKind.has(batchId) && ids.length > 0 && ids.every((id) => seen.has(id))) {
      notes.push({ path: rel(layout.index), message: `the id index names batch ${batchId}, which has no file, for ${ids.length} entr${ids.length === 1 ? 'y' : 'ies'} stored in other files (a torn index line, e.g. after a full disk; harmless)` });
      continue;
    }
    if (options.repair) {
      toRelease.push({ batchId, kind: movedKind.get(batchId) ?? quarantinedKind(ctx, store, batchId) ?? 'batch' });
      continue;
    }
    const count = ids.length;
    missing.push(...ids.filter((id) => !seen.has(id) && !pendingIds.has(id)));
    problems.push({
      path: rel(path.join(layout.aggregated, `${batchId}.json`)),
      message: `batch ${batchId} is missing: ${count} entr${count === 1 ? 'y' : 'ies'} recorded in it are in no batch, failed or abandoned file (${ids.join(', ')}); aggregate-validate --repair releases them so that re-importing them from your source stores them again`,
    });
  }
  // Ids whose index lines were lost cannot be listed for a batch set aside in the same run.
  const indexDamaged = unindexed > 0 || malformed > 0;
  if (toRelease.length > 0) {
    for (const r of releaseBatches(ctx, store, toRelease, scan)) {
      const lost = r.entryIds.filter((id) => !seen.has(id) && !pendingIds.has(id));
      problems.push({
        path: rel(path.join(r.kind === 'batch' ? layout.aggregated : r.kind === 'failed' ? layout.recovery : layout.abandoned, `${r.batchId}${SUFFIX[r.kind]}`)),
        message:
          lost.length > 0
            ? `batch ${r.batchId} was set aside: its ${lost.length} entr${lost.length === 1 ? 'y is' : 'ies are'} in no batch file and no longer counted as stored — re-import them from your source: ${lost.join(', ')}${indexDamaged ? INCOMPLETE_LIST : ''}`
            : `batch ${r.batchId} was set aside: the ids of its entries are not known (the id index lost them) — re-import your source; what is stored already is counted as duplicates`,
      });
      missing.push(...lost);
    }
  }
  // Batches released earlier: their entries must be stored again (re-imported), and no file of
  // theirs may come back (its entries would then be stored twice).
  /** Released batches whose entries are all stored again: their quarantined copies are notes. */
  const restored = new Set<string>();
  const releasedNow = new Set(toRelease.map((r) => r.batchId));
  for (const batchId of [...released].sort()) {
    if ((filesLeft.get(batchId) ?? 0) > 0) {
      problems.push({ path: rel(layout.aggregated), message: `batch ${batchId} was set aside as damaged and its entries released for re-import, but a file of it is back in the store: move it out again (entries re-imported since would be stored twice)` });
      continue;
    }
    if (releasedNow.has(batchId)) continue;
    const lost = recordedIds(store, scan, batchId).sort().filter((id) => !seen.has(id) && !pendingIds.has(id));
    if (lost.length === 0) {
      restored.add(batchId);
      continue;
    }
    missing.push(...lost);
    problems.push({
      path: rel(path.join(layout.aggregated, `${batchId}.json`)),
      message: `batch ${batchId} was set aside as damaged: ${lost.length} of its entries are in no batch file — re-import them from your source: ${lost.join(', ')}`,
    });
  }
  missing.sort();

  if (options.repair && (unindexed > 0 || malformed > 0)) {
    // Keep the lines of batches with a file this check could not read (older/newer format) and
    // of released batches (so their ids can still be listed); every other id comes from a file.
    const keep = (batchId: string) => released.has(batchId) || (unread.has(batchId) && (filesLeft.get(batchId) ?? 0) > 0);
    const pairs = [...filePairs];
    for (const [batchId, ids] of scan.byBatch) if (keep(batchId)) for (const entryId of ids) pairs.push({ entryId, batchId });
    store.assertLockHeld();
    result.rebuiltIndex = await rebuildIdIndex(layout.index, ctx.fs, pairs);
    problems.push({ path: rel(layout.index), message: `the id index was damaged and has been rebuilt from the batch, failed and abandoned files (${result.rebuiltIndex} lines)` });
    ctx.log.warn('rebuilt the id index', { lines: result.rebuiltIndex, unindexed, malformed });
  }

  if (store.quarantine.badRecords > 0) {
    const where = store.quarantine.file ? rel(path.join(layout.errors, store.quarantine.file)) : rel(layout.errors);
    problems.push({ path: where, message: `${store.quarantine.badRecords} bad journal record(s) (${store.quarantine.badBytes} bytes) were quarantined now` });
  }
  const movedNow = new Set(problems.map((p) => /; moved to (.+)$/.exec(p.message)?.[1]).filter(Boolean));
  for (const name of ctx.fs.readdir(layout.errors).sort()) {
    if (name === store.quarantine.file || movedNow.has(rel(path.join(layout.errors, name)))) continue;
    const of = /^(.+?)\.(?:failed\.|abandoned\.)?json\.\d+\.corrupt$/.exec(name)?.[1];
    if (of !== undefined && restored.has(of)) {
      notes.push({ path: rel(path.join(layout.errors, name)), message: `damaged copy of batch ${of}, whose entries were all re-imported: keep it for reference or delete it` });
      continue;
    }
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
wrong checksum…) is moved to recovery/errors/ — never deleted — and reported as moved;
the entries of every batch that has no file any more are released and listed: they are
no longer counted as duplicates, so re-import them from your source. A damaged or lost
id index is rebuilt from the batch files.
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
      const lost =
        result.missing.length > 0
          ? `${result.missing.length} entr${result.missing.length === 1 ? 'y is' : 'ies are'} in no batch file: re-import them from your source (their ids are listed below${input.repair ? '' : '; run aggregate-validate --repair first where it says so'}); every other entry is safe, and each problem names the file to look at.`
          : 'Entries are not lost: each problem names the file to look at.';
      throw new CorruptError(
        `The store in ${ctx.dataRoot} has ${result.problems.length} problem(s) (${result.batches} batch files, ${result.entries} entries checked). ${lost}`,
        { details: result.problems.map((p) => ({ path: p.path, message: p.message })) },
      );
    }
    return result;
  },
  formatText: (r) =>
    `ok: ${r.batches} batch files, ${r.entries} entries, ${r.failed} failed, ${r.abandoned} abandoned, ${r.pending} pending — no problems` +
    r.notes.map((n) => `\nnote: ${n.path}: ${n.message}`).join(''),
};
