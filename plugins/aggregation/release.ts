/**
 * Releasing the entries of a batch set aside as damaged (issue: "entries of a batch set aside
 * can never come back"). When `aggregate-validate --repair` or the recovery pass moves a damaged
 * batch file, failed batch or abandoned batch to `recovery/errors/`, its entries are in no batch
 * file any more, yet the id index (and the journal, until it compacts) still lists their ids, so
 * a re-import of the source counted them as duplicates forever. Releasing the batch records its
 * id in the journal (`x` record, see journal.ts): from then on a line naming it does not make an
 * id stored, and re-importing the source stores those entries again, exactly once.
 *
 * Crash safety — the order is: (1) the file is moved to `recovery/errors/` and both folders are
 * fsynced (quarantineFile); (2) the `x` record is appended and fdatasynced. A kill or power loss
 * between them leaves the batch recorded (index or journal) with no file: its ids still count as
 * stored, so nothing can be imported twice; `aggregate-validate` reports the batch as missing and
 * `--repair` releases it (this module, again). The reverse order could make an entry both in a
 * batch file and importable. A batch is never released while any file of its id (batch, failed
 * or abandoned) is still in the store.
 */
import * as path from 'node:path';
import type { HandlerContext } from '../../src/core/context.js';
import type { OpenStore } from './aggregator.js';
import { scanIdIndex, type IndexScan } from './id-index.js';
import type { ReleasedKind } from './journal.js';
import { abandonedFile, batchFile, failedFile, isBatchId } from './layout.js';

/** A batch whose entries were released: the ids now missing from every batch file. */
export interface ReleasedBatch {
  batchId: string;
  kind: ReleasedKind;
  /** Entry ids the index and the journal recorded for it, in index order, without repeats. */
  entryIds: string[];
}

/** Whether any file of `batchId` — batch, failed or abandoned — is in the store. */
export function batchHasFile(ctx: HandlerContext, store: OpenStore, batchId: string): boolean {
  const { layout } = store;
  return [batchFile(layout, batchId), failedFile(layout, batchId), abandonedFile(layout, batchId)].some((file) => ctx.fs.stat(file) !== undefined);
}

/**
 * The kind of a batch's copy in `recovery/errors/` (`<batchId>.json.<ms>.corrupt`,
 * `<batchId>.failed.json.…`, `<batchId>.abandoned.json.…`), or undefined when there is none.
 */
export function quarantinedKind(ctx: HandlerContext, store: OpenStore, batchId: string): ReleasedKind | undefined {
  for (const name of ctx.fs.readdir(store.layout.errors)) {
    if (name.startsWith(`${batchId}.json.`)) return 'batch';
    if (name.startsWith(`${batchId}.failed.json.`)) return 'failed';
    if (name.startsWith(`${batchId}.abandoned.json.`)) return 'abandoned';
  }
  return undefined;
}

/** Entry ids recorded for `batchId`: its index lines and the journal's committed entries. */
export function recordedIds(store: OpenStore, scan: IndexScan, batchId: string): string[] {
  const ids = new Set(scan.byBatch.get(batchId) ?? []);
  for (const c of store.journal.committed) if (c.batchId === batchId) ids.add(c.entryId);
  return [...ids];
}

/**
 * Releases `batches` (their files already moved out durably by the caller) with one journal
 * write: a batch id already released, not a batch id, or that still has a file in the store is
 * skipped. `scan` is the index as read by the caller (read here when not given). Returns the
 * batches released now with their entry ids, and logs each with the ids ("re-import them from
 * your source"). Throws the port's errors and LockedError when the store lock was lost.
 */
export function releaseBatches(ctx: HandlerContext, store: OpenStore, batches: ReadonlyArray<{ batchId: string; kind: ReleasedKind }>, scan?: IndexScan): ReleasedBatch[] {
  const todo = batches.filter(
    ({ batchId }, i) =>
      batches.findIndex((b) => b.batchId === batchId) === i &&
      !store.journal.released.has(batchId) &&
      isBatchId(batchId) &&
      !batchHasFile(ctx, store, batchId),
  );
  if (todo.length === 0) return [];
  const index = scan ?? scanIdIndex(store.layout.index, ctx.fs);
  const released = todo.map(({ batchId, kind }) => ({ batchId, kind, entryIds: recordedIds(store, index, batchId).sort() }));
  store.assertLockHeld();
  store.journal.release(
    released.map((r) => ({ batchId: r.batchId, kind: r.kind, entryCount: r.entryIds.length })),
    ctx.now(),
  );
  for (const r of released) {
    ctx.log.error('a damaged batch was set aside: its entries are in no batch file; re-import them from your source', {
      batchId: r.batchId,
      kind: r.kind,
      entries: r.entryIds.length,
      entryIds: r.entryIds,
      errors: path.relative(ctx.dataRoot, store.layout.errors),
    });
  }
  return released;
}
