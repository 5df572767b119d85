/**
 * The recovery pass (layer 2, SPEC §6). `planRecovery` is pure: from a snapshot of
 * `recovery/` and the clock it decides, per failed batch, whether to retry it now, leave it
 * for later, or quarantine it. `runRecoveryPass` applies the plan under the store lock.
 *
 * Order: oldest `failedAt` first, then fewest retries. Backoff after the n-th failed retry:
 * `RECOVERY_BASE_DELAY_MS × 2^(n−1)`, capped at `RECOVERY_MAX_DELAY_MS`, times a jitter in
 * [0.5, 1.5). A stored due time further away than 1.5 × the cap (a clock that jumped back) is
 * clamped to now. After `batchRetryLimit` failed retries the batch moves to
 * `recovery/abandoned/<id>.abandoned.json`. A failed batch whose batch file already exists with
 * the same checksum (a crash between write and cleanup) is only cleaned up, never written twice.
 *
 * Versions: a failed batch of a newer format (greater major version) is left exactly as it is
 * and logged; one of the older format is left for `aggregate-migrate` (logged with that hint).
 * A batch file of a newer or older format already at the target name is never overwritten:
 * the attempt fails with that message and the failed batch keeps its retries. A failed batch
 * that `aggregate-migrate` upgraded keeps its legacy id (LEGACY_BATCH_ID_PATTERN) and its
 * `migrated` provenance in the batch file it becomes.
 *
 * A failed batch that cannot be read is quarantined (moved to `recovery/errors/`) and then, when
 * no other file of its batch id is left, released (release.ts): its entry ids stop counting as
 * stored, so re-importing the source restores them. They are listed in `released`.
 */
import * as path from 'node:path';
import type { HandlerContext } from '../../src/core/context.js';
import type { OpenStore } from './aggregator.js';
import { quarantineFile } from './aggregator.js';
import { BATCH_MESSAGES, makeBatch, readBatchFile, writeBatchFile, type FailedBatchFile } from './batch-store.js';
import { abandonedFile, acceptableBatchId, batchFile } from './layout.js';
import { releaseBatches, type ReleasedBatch } from './release.js';

export const RECOVERY_BASE_DELAY_MS = 60_000;
export const RECOVERY_MAX_DELAY_MS = 3_600_000;

export interface FailedSnapshot {
  batchId: string;
  failedAt: number;
  retryCount: number;
  nextRetryAt: number;
}

export type RecoveryAction = { kind: 'retry'; batchId: string } | { kind: 'wait'; batchId: string; until: number };

/** Pure plan: which failed batches to retry now (in order) and which to leave. */
export function planRecovery(snapshot: readonly FailedSnapshot[], now: number, only?: string): RecoveryAction[] {
  return [...snapshot]
    .filter((s) => only === undefined || s.batchId === only)
    .sort((a, b) => a.failedAt - b.failedAt || a.retryCount - b.retryCount || a.batchId.localeCompare(b.batchId))
    .map((s) => {
      const due = s.nextRetryAt > now + 1.5 * RECOVERY_MAX_DELAY_MS ? now : s.nextRetryAt;
      return only !== undefined || due <= now ? { kind: 'retry', batchId: s.batchId } : { kind: 'wait', batchId: s.batchId, until: due };
    });
}

/** Next due time after `retryCount` failed retries; `random` in [0, 1). */
export function nextRetryAt(now: number, retryCount: number, random: number): number {
  const delay = Math.min(RECOVERY_BASE_DELAY_MS * 2 ** Math.max(0, retryCount - 1), RECOVERY_MAX_DELAY_MS);
  return now + Math.round(delay * (0.5 + random));
}

/** Counts of one pass (SPEC §3 `aggregate-recover` result). */
export interface RecoveryResult {
  processed: number;
  succeeded: number;
  failed: number;
  abandoned: number;
  quarantined: number;
  /** Failed batches left for later, with their due time (epoch ms). */
  waiting: Array<{ batchId: string; nextRetryAt: number }>;
  /**
   * Quarantined failed batches whose entries were released: their ids are in no batch file
   * now and are no longer duplicates — re-import them from your source.
   */
  released: ReleasedBatch[];
}

/**
 * Runs one pass over recovery/ with the store open. `only` limits it to one batch id. Adds its
 * outcomes to the persisted totals (`metrics.json` `recovery`), also when it throws half way.
 */
export function runRecoveryPass(ctx: HandlerContext, store: OpenStore, only?: string): RecoveryResult {
  const result: RecoveryResult = { processed: 0, succeeded: 0, failed: 0, abandoned: 0, quarantined: 0, waiting: [], released: [] };
  try {
    passOver(ctx, store, only, result);
  } finally {
    // Outcomes count even when the pass stops half way (an I/O error): what was done, was done.
    const m = store.metrics.recovery;
    m.processed += result.processed;
    m.succeeded += result.succeeded;
    m.failed += result.failed;
    m.abandoned += result.abandoned;
    m.quarantined += result.quarantined;
  }
  return result;
}

function passOver(ctx: HandlerContext, store: OpenStore, only: string | undefined, result: RecoveryResult): void {
  const { layout } = store;
  const log = ctx.logFor('recovery');
  const now = ctx.now();
  const docs = new Map<string, FailedBatchFile>();
  for (const name of ctx.fs.readdir(layout.recovery)) {
    if (!name.endsWith('.failed.json')) continue;
    const file = path.join(layout.recovery, name);
    const read = readBatchFile(ctx.fs, file);
    const doc = read && 'batch' in read ? (read.batch as FailedBatchFile) : undefined;
    if (read && 'problem' in read && read.problem === 'newer-version') {
      log.warn('failed batch of a newer format left as it is', { file, message: BATCH_MESSAGES.newerVersion(path.relative(ctx.dataRoot, file), read.version) });
      continue;
    }
    if (read && 'problem' in read && read.problem === 'legacy') {
      log.warn('failed batch of the older format left for aggregate-migrate', { file, message: BATCH_MESSAGES.legacy(path.relative(ctx.dataRoot, file), read.version) });
      continue;
    }
    if (doc !== undefined && store.journal.released.has(doc.batchId)) {
      // A batch set aside as damaged whose entries were released for re-import, put back by
      // hand: writing it would store every re-imported entry twice. Set aside again.
      log.warn('failed batch of a released batch put back: set aside again, not written', { file });
      quarantineFile(ctx, layout, file);
      result.quarantined++;
      continue;
    }
    const idOk = doc !== undefined && acceptableBatchId(doc.batchId, doc.migrated);
    if (!doc || !idOk || `${doc.batchId}.failed.json` !== name || doc.entries.length === 0) {
      quarantineFile(ctx, layout, file);
      result.quarantined++;
      // Only after the move is durable (a kill in between leaves a missing batch, which
      // aggregate-validate --repair releases): see release.ts.
      result.released.push(...releaseBatches(ctx, store, [{ batchId: name.slice(0, -'.failed.json'.length), kind: 'failed' }]));
      continue;
    }
    docs.set(doc.batchId, doc);
  }
  const snapshot = [...docs.values()].map((d) => ({
    batchId: d.batchId,
    failedAt: Number(d.failedAt) || 0,
    retryCount: Number(d.retryCount) || 0,
    nextRetryAt: Number(d.nextRetryAt) || 0,
  }));
  for (const action of planRecovery(snapshot, now, only)) {
    if (action.kind === 'wait') {
      result.waiting.push({ batchId: action.batchId, nextRetryAt: action.until });
      continue;
    }
    const doc = docs.get(action.batchId)!;
    const failedPath = path.join(layout.recovery, `${doc.batchId}.failed.json`);
    const target = batchFile(layout, doc.batchId);
    result.processed++;
    try {
      const existing = readBatchFile(ctx.fs, target);
      if (existing && 'problem' in existing && existing.problem === 'newer-version') {
        throw new Error(BATCH_MESSAGES.newerVersion(path.relative(ctx.dataRoot, target), existing.version));
      }
      if (existing && 'problem' in existing && existing.problem === 'legacy') {
        throw new Error(BATCH_MESSAGES.legacy(path.relative(ctx.dataRoot, target), existing.version));
      }
      if (!(existing && 'batch' in existing && existing.batch.checksum === doc.checksum)) {
        const batch = makeBatch(doc.batchId, now, doc.entries, true);
        writeBatchFile(ctx.fs, target, doc.migrated ? { ...batch, migrated: doc.migrated } : batch);
      } else {
        // Written by a pass that was killed before it finished: its bytes and its name may not
        // be durable yet, and the failed copy is about to go.
        const fd = ctx.fs.openAppend(target);
        try {
          ctx.fs.fsync(fd);
        } finally {
          ctx.fs.close(fd);
        }
        ctx.fs.fsyncDir(layout.aggregated);
      }
      // Counted in the store's totals before the failed copy goes (a repeat is ignored by id).
      store.journal.recovered(doc.batchId, doc.entryCount, now);
      ctx.fs.removeDurable(failedPath);
      result.succeeded++;
      log.info('recovered a failed batch', { batchId: doc.batchId, entries: doc.entryCount });
    } catch (error) {
      const retryCount = (Number(doc.retryCount) || 0) + 1;
      const updated: FailedBatchFile = { ...doc, retryCount, lastRetryAt: now, lastError: (error as Error).message, nextRetryAt: nextRetryAt(now, retryCount, Math.random()) };
      if (retryCount >= ctx.config.recovery.batchRetryLimit) {
        ctx.fs.mkdirp(layout.abandoned);
        ctx.fs.writeFileDurable(abandonedFile(layout, doc.batchId), JSON.stringify(updated));
        ctx.fs.removeDurable(failedPath);
        result.abandoned++;
        log.error('abandoned a failed batch after the retry limit', { batchId: doc.batchId, retryCount });
      } else {
        ctx.fs.writeFileDurable(failedPath, JSON.stringify(updated));
        result.failed++;
        log.warn('recovery attempt failed', { batchId: doc.batchId, retryCount, error: updated.lastError });
      }
    }
  }
}
