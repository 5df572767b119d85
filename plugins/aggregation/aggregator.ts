/**
 * The aggregator: opens the store under the cross-process lock, resumes what a killed process
 * left (an open flush intent, corrupt journal records), accepts entries durably, and cuts
 * batches when the flush policy says so (SPEC §5).
 *
 * Flush protocol, per call, for the batches the policy planned:
 *   1. journal `intent` record (fsynced) naming each batch id and its seq range;
 *   2. each batch file written atomically + directory fsync (3 in-process attempts with
 *      exponential backoff; when all fail, the batch goes to `recovery/<id>.failed.json`);
 *   3. journal `commit` record (fsynced) for the batches that reached the disk.
 * A process killed between 1 and 3 leaves an open intent; the next invocation resolves it by
 * looking for each named file, so every entry ends in exactly one place.
 */
import type { HandlerContext } from '../../src/core/context.js';
import { CorruptError, IoError, RateLimitError } from '../../src/core/errors.js';
import { acquireLock, type StoreLock } from '../../src/core/lock.js';
import { DATA_ROOT_GITIGNORE } from '../../src/core/logger.js';
import { BATCH_MESSAGES, readBatchFile, serializeBatch, writeBatchFile, type FailedBatchFile } from './batch-store.js';
import { autoBatchSize, planFlush } from './flush-policy.js';
import { openIdIndex, type IdIndex } from './id-index.js';
import { isDirectRange, openJournal, type BatchRange, type Journal, type JournalEntry, type QuarantineReport } from './journal.js';
import { readInbox } from './inbox.js';
import { batchFile, failedFile, storeLayout, type StoreLayout } from './layout.js';
import { readMetrics, recordFlush, writeMetrics, type MetricsFile } from './metrics.js';
import type { BatchFile, Entry, FlushedBatch } from './types.js';
import * as path from 'node:path';
import { randomBytes } from 'node:crypto';

/** In-process attempts per batch file before it goes to recovery/ (SPEC §5: 3). */
export const FLUSH_ATTEMPTS = 3;
/** First backoff between attempts, ms; doubled each time (25, 50). */
export const FLUSH_BACKOFF_MS = 25;
/** A flush of at least this many batches writes them as one group (concurrent fsyncs, one directory fsync). */
export const GROUP_FLUSH_MIN_BATCHES = 2;
/** `ingestBulk` writes batches straight to files only when it has at least this many whole batches of new entries. */
export const BULK_MIN_BATCHES = 2;
/** Ids per slice when ingestBulk computes index lines during its group write (then yields to the event loop). */
export const INDEX_PREPARE_SLICE = 2_000;
/** Compact the journal once this many committed entries are still listed in it. */
export const COMPACT_AFTER_ENTRIES = 256;

/**
 * Internal tuning, module state in one place (STYLE §8): tests lower `compactAfterEntries` to
 * reach a compaction within a few entries, and call {@link resetStoreTuning} afterwards.
 */
export const storeTuning = { compactAfterEntries: COMPACT_AFTER_ENTRIES };

export function resetStoreTuning(): void {
  storeTuning.compactAfterEntries = COMPACT_AFTER_ENTRIES;
}

export interface FlushOutcome {
  flushed: FlushedBatch[];
  /** Batches that went to recovery/ after every attempt failed. */
  failed: Array<{ batchId: string; file: string; entryCount: number; error: string }>;
  /** Set when even the failed-batch file could not be written: entries stay in the journal. */
  stuck?: string;
}

export interface OpenStore {
  layout: StoreLayout;
  journal: Journal;
  index: IdIndex;
  metrics: MetricsFile;
  /** Bad journal bytes moved to recovery/errors at open. */
  quarantine: QuarantineReport;
  /** Batches an earlier killed process had written, committed at open. */
  resumed: FlushedBatch[];
  /**
   * Stores entries not seen before; duplicates (by entryId) are counted, not stored. Durable on
   * return. Throws RateLimitError (nothing stored) over `rateLimit`, unless `rateLimit: false`.
   */
  ingest(entries: readonly Entry[], options?: { rateLimit?: boolean }): { accepted: JournalEntry[]; duplicates: number };
  /**
   * Checks and records the rate limit (config `rateLimit`) for entries about to be stored, given
   * as counts per userId — for a streamed input, checked once for the whole input before any of
   * it is stored. Throws RateLimitError (exit 2), recording nothing, when any user would exceed
   * the limit. A no-op when the limit is off.
   */
  reserveRateLimit(perUser: ReadonlyMap<string, number>): void;
  /**
   * Bulk form of {@link ingest} for many entries (an `--input` file): whole batches of the new
   * entries are written straight to batch files (trigger `size`, one group commit) instead of
   * being appended to the journal and flushed back out of it; only the entries that complete
   * the pending partial batch and the remainder (< batchSize) are appended to the journal. The
   * batches are those ingest + flush would cut. Exactly once: the batches are named by a journal
   * intent first, their ids reach the id index before the commit record, and an intent left open
   * by a killed process is resolved from the files found (see resolveOpenIntent). Durable on
   * return: `acceptedIds` are the new entries (in the journal or a batch file), `flushed` and
   * `failed` the batches written or parked; `stuck` as in {@link FlushOutcome}. Throws
   * RateLimitError (nothing stored) like ingest. With fewer than BULK_MIN_BATCHES whole batches
   * it is ingest. `onDurable` is told the ids as soon as they are safe (journal appended, or
   * batch files and index written), so a caller that starts over after a lost lock does not
   * count its own entries as duplicates.
   */
  ingestBulk(entries: readonly Entry[], options?: { rateLimit?: boolean; onDurable?: (entryIds: readonly string[]) => void }): Promise<{ acceptedIds: string[]; duplicates: number; flushed: FlushedBatch[]; failed: FlushOutcome['failed']; stuck?: string }>;
  /** Applies the size/threshold/age triggers, or flushes everything with `manual`. */
  flush(options?: { manual?: boolean }): Promise<FlushOutcome>;
  /** Pending count and age of the oldest pending entry in ms (0 when none). */
  pendingSummary(): { pending: number; batchAgeMs: number };
  /**
   * Throws LockedError (flagged `compromised`, so withStore starts the operation over) when
   * the store lock was taken over; call before each durable step of your own.
   */
  assertLockHeld(): void;
}

const IO_CODES = new Set(['ENOSPC', 'EACCES', 'EPERM', 'EROFS', 'EIO', 'EDQUOT', 'EMFILE', 'ENFILE', 'ENOTDIR', 'EISDIR', 'ENOENT', 'EBUSY', 'EEXIST']);

/** Wraps a file-system error as an IoError that names the data root (SPEC §3 exit 1). */
export function toIoError(error: unknown, dataRoot: string): unknown {
  const err = error as NodeJS.ErrnoException;
  if (err && typeof err.code === 'string' && IO_CODES.has(err.code)) {
    return new IoError(`Could not use the data root ${dataRoot}: ${err.code} on ${err.path ?? 'a file'}. Entries acknowledged earlier are safe in ${path.join(dataRoot, 'aggregated')}.`, {
      cause: error,
      details: [{ path: err.path ?? dataRoot, message: err.message }],
    });
  }
  return error;
}

const safeRead = <T>(read: () => T): T | undefined => {
  try {
    return read();
  } catch {
    return undefined;
  }
};

/** A batch to write: its entries, why it is cut, and its range in the intent. */
interface BatchChunk {
  trigger: FlushedBatch['trigger'];
  entries: Entry[];
  range: BatchRange;
}

const newBatchId = (at: number): string => `batch_${String(at).padStart(13, '0')}_${randomBytes(4).toString('hex')}`;

/**
 * Runs `fn` with the store open and locked. Creates the layout (0700), takes the lock
 * (LockedError after 30 s unless `lockTimeoutMs` says otherwise, ms), resumes an open intent,
 * and after `fn` compacts the journal when due and saves metrics when a counter changed. File-system errors become IoError naming the data root.
 */
export async function withStore<T>(ctx: HandlerContext, fn: (store: OpenStore) => Promise<T>, options: StoreOptions = {}): Promise<T> {
  // A lock lost mid-operation aborts before the next durable step; every step is idempotent on
  // a fresh open (ingest dedupes by id, flush replans from the journal), so start over.
  for (let attempt = 1; ; attempt++) {
    try {
      return await withStoreOnce(ctx, fn, options);
    } catch (error) {
      if (!(error as { compromised?: boolean }).compromised || attempt >= LOCK_LOST_ATTEMPTS) throw error;
      ctx.log.warn('store lock lost mid-operation; starting over', { attempt });
    }
  }
}

/** Attempts of a whole store operation when its lock is lost mid-way. */
export const LOCK_LOST_ATTEMPTS = 3;

/**
 * `lockTimeoutMs`: how long to wait for the store lock (default 30 s, then LockedError).
 * `index`: an id index from {@link openStoreIndex} to reuse across calls in this process (a
 * streamed ingest), so shards already read are not read again.
 */
export interface StoreOptions {
  lockTimeoutMs?: number;
  index?: IdIndex;
}

/** An id index for `ctx`'s data root, to pass as `StoreOptions.index` to several withStore calls. */
export function openStoreIndex(ctx: HandlerContext): IdIndex {
  return openIdIndex(storeLayout(ctx.dataRoot).index, ctx.fs);
}

async function withStoreOnce<T>(ctx: HandlerContext, fn: (store: OpenStore) => Promise<T>, options: StoreOptions): Promise<T> {
  const { lockTimeoutMs } = options;
  const layout = storeLayout(ctx.dataRoot);
  let lock: StoreLock | undefined;
  try {
    assertOwnDataRoot(ctx);
    ctx.fs.mkdirp(layout.journal);
    // The data root ignores itself, so `git add -A` in the user's repository never commits the
    // journal, user ids or metrics (and nothing outside the data root is touched for it).
    const ignore = path.join(ctx.dataRoot, '.gitignore');
    if (!ctx.fs.stat(ignore)) ctx.fs.writeFileDurable(ignore, DATA_ROOT_GITIGNORE);
    lock = await acquireLock(layout.lockTarget, lockTimeoutMs === undefined ? {} : { timeoutMs: lockTimeoutMs });
    const { journal, quarantine } = openJournal(layout.journal, layout.errors, ctx.fs, ctx.now);
    if (quarantine.badRecords > 0) {
      ctx.log.warn('journal records quarantined', { ...quarantine, dir: layout.errors });
    }
    const index = options.index ?? openIdIndex(layout.index, ctx.fs);
    // Lines naming a batch set aside as damaged no longer make an id stored (release.ts).
    index.setReleased(journal.released);
    let metricsUnreadable = false;
    const metrics = readMetrics(ctx.fs, layout.metrics, (error) => {
      metricsUnreadable = true;
      ctx.log.warn('metrics.json was unreadable; counters start again from zero', { file: layout.metrics, error: String(error) });
    });
    // A call that changed no counter (a status read, a metrics scrape) leaves metrics.json alone.
    const metricsAtOpen = JSON.stringify(metrics);
    const heldLock = lock;
    const store = createOpenStore(ctx, layout, journal, index, metrics, quarantine, heldLock);
    store.resumed = await resolveOpenIntent(ctx, store, heldLock);
    mergeInbox(ctx, store, heldLock);
    try {
      const result = await fn(store);
      if (journal.committed.length >= storeTuning.compactAfterEntries) {
        heldLock.assertHeld();
        await index.add(journal.committed);
        journal.compact();
      }
      return result;
    } finally {
      journal.close();
      try {
        if (metricsUnreadable || JSON.stringify(metrics) !== metricsAtOpen) writeMetrics(ctx.fs, layout.metrics, metrics);
      } catch (error) {
        ctx.log.warn('metrics not saved', { error: String(error) });
      }
    }
  } catch (error) {
    throw toIoError(error, ctx.dataRoot);
  } finally {
    await lock?.release();
  }
}

/**
 * Refuses a data root that belongs to someone else: a symlink whose target, or an existing
 * folder, owned by another user (a planted `.flowforge -> /home/other/...` must not make us
 * write into their files). Throws IoError (exit 1) naming both paths and owners.
 */
export function assertOwnDataRoot(ctx: HandlerContext): void {
  const uid = process.getuid?.();
  if (uid === undefined) return; // no ownership model (Windows)
  const link = ctx.fs.lstat(ctx.dataRoot);
  if (!link) return;
  const target = link.isSymbolicLink() ? ctx.fs.realpath(ctx.dataRoot) : ctx.dataRoot;
  const owner = (link.isSymbolicLink() ? ctx.fs.stat(target) : link)?.uid;
  if (owner !== undefined && owner !== uid) {
    throw new IoError(
      `Refusing to use the data root ${ctx.dataRoot}${target !== ctx.dataRoot ? ` (a symlink to ${target})` : ''}: it belongs to uid ${owner}, not to you (uid ${uid}). Point --data-path or FLOWFORGE_DATA_PATH at a folder of your own.`,
      { details: [{ path: ctx.dataRoot, message: `owned by uid ${owner}` }] },
    );
  }
}

/**
 * The per-user rate limit (config `rateLimit.entriesPerMinute`, 0 = off): counts of entries
 * accepted per user in the current clock minute, kept in `aggregated/rate.json`. A call that
 * would take any user over the limit throws RateLimitError (exit 2) before anything is
 * appended; otherwise the counts are updated. Runs under the store lock.
 */
function enforceRateLimit(ctx: HandlerContext, layout: StoreLayout, fresh: readonly Entry[]): void {
  if (ctx.config.rateLimit.entriesPerMinute === 0 || fresh.length === 0) return;
  const adding = new Map<string, number>();
  for (const e of fresh) adding.set(e.userId, (adding.get(e.userId) ?? 0) + 1);
  reserveRate(ctx, layout, adding);
}

/** The rate-limit window check and update of {@link enforceRateLimit}, from counts per user. */
function reserveRate(ctx: HandlerContext, layout: StoreLayout, adding: ReadonlyMap<string, number>): void {
  const limit = ctx.config.rateLimit.entriesPerMinute;
  if (limit === 0 || adding.size === 0) return;
  const file = path.join(layout.aggregated, 'rate.json');
  const minute = Math.floor(ctx.now() / 60_000) * 60_000;
  let state: { minute: number; counts: Record<string, number> } = { minute, counts: {} };
  try {
    const saved = JSON.parse(ctx.fs.readFile(file).toString('utf8')) as typeof state;
    if (saved.minute === minute && saved.counts && typeof saved.counts === 'object') state = saved;
  } catch {
    /* no window yet, or an unreadable one: start a fresh minute */
  }
  const over = [...adding].filter(([user, n]) => (state.counts[user] ?? 0) + n > limit);
  if (over.length > 0) {
    throw new RateLimitError(
      `Rate limit: at most ${limit} entries per user per minute (rateLimit.entriesPerMinute); nothing from this call was accepted, entries accepted earlier are untouched. Try again after ${new Date(minute + 60_000).toISOString()}.`,
      { details: over.map(([user, n]) => ({ path: `userId=${user}`, message: `${state.counts[user] ?? 0} accepted this minute + ${n} in this call > ${limit}` })) },
    );
  }
  for (const [user, n] of adding) state.counts[user] = (state.counts[user] ?? 0) + n;
  ctx.fs.writeFileDurable(file, JSON.stringify(state));
}

/**
 * Merges entries queued in the inbox (acknowledged without the lock, see inbox.ts) into the
 * journal, then removes each inbox file. Duplicates are dropped by id; the rate limit does not
 * apply (these entries were acknowledged already). An unreadable file is quarantined.
 */
function mergeInbox(ctx: HandlerContext, store: OpenStore, lock: StoreLock): void {
  for (const { file, entries } of readInbox(ctx, store.layout)) {
    lock.assertHeld();
    if (entries === undefined) {
      quarantineFile(ctx, store.layout, file);
      continue;
    }
    const { accepted, duplicates } = store.ingest(entries, { rateLimit: false });
    ctx.fs.removeDurable(file);
    ctx.log.info('merged queued entries', { file: path.relative(ctx.dataRoot, file), accepted: accepted.length, duplicates });
  }
}

/**
 * Commits (or aborts) what a killed process's open intent left behind. Journal ranges are
 * committed as a prefix (a range whose file is missing, and every later one, stays pending);
 * a batch written straight to its file by ingestBulk is committed when its file (or failed
 * file) is there — its ids are added to the id index first, since the journal never held them —
 * and otherwise dropped: its entries were never acknowledged.
 */
async function resolveOpenIntent(ctx: HandlerContext, store: OpenStore, lock: StoreLock): Promise<FlushedBatch[]> {
  const intent = store.journal.openIntent;
  if (!intent) return [];
  const done: BatchRange[] = [];
  const counts: number[] = [];
  const resumed: FlushedBatch[] = [];
  const indexPairs: Array<{ entryId: string; batchId: string }> = [];
  /** Batch and failed files found for committed ranges: the killed process may not have synced them. */
  const found: string[] = [];
  /** Files of journal ranges left pending (after the first missing file): removed before the record. */
  const orphans: string[] = [];
  let journalRangesOpen = true;
  for (const range of intent) {
    const direct = isDirectRange(range);
    if (!direct && !journalRangesOpen) {
      // After the first missing file, the journal's entries stay pending (commits are a prefix:
      // the journal keeps one watermark). A group write lands its files in any order, so a file
      // for such a range may be there anyway: it goes, or its entries would be stored twice.
      for (const f of [batchFile(store.layout, range.b), failedFile(store.layout, range.b)]) if (ctx.fs.stat(f)) orphans.push(f);
      continue;
    }
    const file = batchFile(store.layout, range.b);
    const read = readBatchFile(ctx.fs, file);
    if (read && 'batch' in read) {
      done.push({ ...range, failed: undefined });
      counts.push(read.batch.entryCount);
      if (direct) for (const e of read.batch.entries) indexPairs.push({ entryId: e.entryId, batchId: range.b });
      resumed.push({ batchId: range.b, file: path.relative(ctx.dataRoot, file), entryCount: read.batch.entryCount, trigger: 'manual' });
      found.push(file);
      continue;
    }
    if (read && 'problem' in read && read.problem === 'newer-version') {
      // A newer product wrote this name: never touch it, and leave the intent open for it.
      throw new CorruptError(BATCH_MESSAGES.newerVersion(path.relative(ctx.dataRoot, file), read.version), { details: [{ path: path.relative(ctx.dataRoot, file), message: 'newer batch format' }] });
    }
    if (read && 'problem' in read) {
      // A bad file is disk damage, or a large group's file cut short by a power loss before its
      // syncfs (group-write.ts; never acknowledged): keep it aside, never delete it.
      quarantineFile(ctx, store.layout, file);
    }
    const failed = readBatchFile(ctx.fs, failedFile(store.layout, range.b));
    if (failed && 'batch' in failed) {
      done.push({ ...range, failed: true });
      counts.push(failed.batch.entryCount);
      if (direct) for (const e of failed.batch.entries) indexPairs.push({ entryId: e.entryId, batchId: range.b });
      found.push(failedFile(store.layout, range.b));
      continue;
    }
    if (!direct) journalRangesOpen = false; // later journal ranges were never attempted: their entries stay pending
  }
  lock.assertHeld();
  if (found.length > 0) {
    // The killed process may not have made the found files durable yet — their bytes (a large
    // group renames its files before one syncfs) nor their names: both become durable before
    // the index and the commit record say the files exist.
    await ctx.fs.syncFilesDurable(found);
    ctx.fs.fsyncDir(store.layout.aggregated);
    if (done.some((d) => d.failed)) ctx.fs.fsyncDir(store.layout.recovery);
  }
  if (indexPairs.length > 0) await store.index.add(indexPairs);
  lock.assertHeld();
  for (const f of orphans) ctx.fs.removeDurable(f);
  if (orphans.length > 0) ctx.log.warn('removed batch files an interrupted flush wrote after one it did not', { files: orphans.map((f) => path.relative(ctx.dataRoot, f)) });
  lock.assertHeld();
  if (done.length > 0) store.journal.commit(done, ctx.now(), counts);
  else store.journal.abort(ctx.now());
  const leftovers = removeIntentTempFiles(ctx, store.layout, intent);
  ctx.log.info('resumed an interrupted flush', { committed: done.map((d) => d.b), abandonedRanges: intent.length - done.length, tempFilesRemoved: leftovers });
  return resumed;
}

/**
 * Temp files (`<batch file>.<number>`) of the batches an open intent named: a process killed
 * during its group write leaves up to 32. Nobody else writes batch files without the store
 * lock, which this process holds, so they are garbage. Costs one listing of `aggregated/`, and
 * only after a killed flush. Returns how many were removed (a failure to remove one is logged
 * and left to aggregate-cleanup).
 */
function removeIntentTempFiles(ctx: HandlerContext, layout: StoreLayout, intent: readonly BatchRange[]): number {
  const named = new Set(intent.map((range) => `${range.b}.json`));
  let removed = 0;
  for (const name of ctx.fs.readdir(layout.aggregated)) {
    const dot = name.lastIndexOf('.');
    if (dot <= 0 || !/^\.\d{1,10}$/.test(name.slice(dot)) || !named.has(name.slice(0, dot))) continue;
    try {
      ctx.fs.unlink(path.join(layout.aggregated, name));
      removed++;
    } catch (error) {
      ctx.log.warn('could not remove a temp file of an interrupted flush', { file: name, error: (error as Error).message });
    }
  }
  return removed;
}

/** Moves a corrupt stored file into recovery/errors (never deletes it). */
export function quarantineFile(ctx: HandlerContext, layout: StoreLayout, file: string): string {
  ctx.fs.mkdirp(layout.errors);
  const target = path.join(layout.errors, `${path.basename(file)}.${ctx.now()}.corrupt`);
  ctx.fs.renameDurable(file, target);
  ctx.log.warn('quarantined a corrupt file', { file, movedTo: target });
  return target;
}

function createOpenStore(
  ctx: HandlerContext,
  layout: StoreLayout,
  journal: Journal,
  index: IdIndex,
  metrics: MetricsFile,
  quarantine: QuarantineReport,
  lock: StoreLock,
): OpenStore {
  const { config } = ctx;
  /** `batchSize`, resolved for "auto" from (a sample of) the pending entries' sizes. */
  const batchSizeNow = (pending: readonly JournalEntry[]): number => {
    if (config.batchSize !== 'auto') return config.batchSize;
    const step = Math.max(1, Math.floor(pending.length / 200));
    const sample: number[] = [];
    for (let i = 0; i < pending.length; i += step) sample.push(Buffer.byteLength(JSON.stringify(pending[i]!.entry)));
    return autoBatchSize(sample);
  };

  const writeWithRetries = async (file: string, write: () => void, attempts = FLUSH_ATTEMPTS): Promise<string | undefined> => {
    let lastError = '';
    for (let attempt = 1; attempt <= attempts; attempt++) {
      try {
        lock.assertHeld();
        write();
        return undefined;
      } catch (error) {
        lastError = (error as Error).message;
        if ((error as { code?: string }).code === 'E_LOCKED') throw error;
        ctx.log.warn('batch write failed', { file, attempt, error: lastError });
        if (attempt < attempts) {
          metrics.retryCount++;
          await ctx.sleep(FLUSH_BACKOFF_MS * 2 ** (attempt - 1));
        }
      }
    }
    return lastError || 'unknown error';
  };

  /** Entries not seen before (not in the journal, not in the index, not earlier in `entries`). */
  const freshOf = (entries: readonly Entry[]): { fresh: Entry[]; duplicates: number } => {
    const fresh: Entry[] = [];
    const seen = new Set<string>();
    let duplicates = 0;
    const candidates = entries.filter((e) => {
      if (seen.has(e.entryId) || journal.hasId(e.entryId)) {
        duplicates++;
        return false;
      }
      seen.add(e.entryId);
      return true;
    });
    const stored = index.lookup(candidates.map((e) => e.entryId));
    for (const e of candidates) {
      if (stored.has(e.entryId)) duplicates++;
      else fresh.push(e);
    }
    return { fresh, duplicates };
  };

  /** The journal half of {@link OpenStore.ingest}: rate limit, append (durable), counters. */
  const appendFresh = (fresh: Entry[], duplicates: number, options: { rateLimit?: boolean }): { accepted: JournalEntry[]; duplicates: number } => {
    if (options.rateLimit !== false) enforceRateLimit(ctx, layout, fresh);
    metrics.totalOperations++;
    lock.assertHeld();
    const accepted = journal.append(fresh, ctx.now());
    metrics.successfulOperations++;
    metrics.acceptedEntries += accepted.length;
    metrics.duplicateEntries += duplicates;
    return { accepted, duplicates };
  };

  /**
   * Step 2 of the flush protocol for batches named by an intent already recorded: writes each
   * batch file (a group commit when there are several: concurrent atomic writes, ONE directory
   * fsync), retries a batch the group could not write one by one (FLUSH_ATTEMPTS with backoff;
   * once one batch exhausted them, one attempt for each later batch), and
   * parks a batch that still fails in recovery/. Returns the ranges to commit (a prefix of
   * `chunks`, in order) with their entry counts; `stuckFrom` is the index of the first chunk
   * neither written nor parked (it and later chunks were not stored).
   */
  const writeBatches = async (chunks: readonly BatchChunk[], now: number): Promise<{ outcome: FlushOutcome; done: BatchRange[]; counts: number[]; stuckFrom?: number }> => {
    const outcome: FlushOutcome = { flushed: [], failed: [] };
    const done: BatchRange[] = [];
    const counts: number[] = [];
    // Built on first use: in a group write, batch i is serialized when its turn comes, so the
    // checksums and JSON of later batches are computed while earlier ones are being fsynced.
    // The group write takes each text once and lets it go (a 100k import holds ~24 MB of it);
    // a batch written alone later (after a failed group item) is serialized again.
    const built: Array<{ batch: BatchFile; text: string } | undefined> = new Array(chunks.length);
    const batchAt = (i: number): { batch: BatchFile; text: string } => (built[i] ??= serializeBatch(chunks[i]!.range.b, now, chunks[i]!.entries));
    const takeText = (i: number): string => {
      const { batch, text } = batchAt(i);
      built[i] = { batch, text: '' };
      return text;
    };
    // Group commit: several batches are written concurrently with ONE directory fsync; a
    // batch the group could not write takes the one-by-one path below (retries, parking).
    const grouped = new Map<number, number>();
    if (chunks.length >= GROUP_FLUSH_MIN_BATCHES) {
      const started = performance.now();
      lock.assertHeld();
      let written: Array<Error | undefined>;
      try {
        written = await ctx.fs.writeFilesDurable(
          layout.aggregated,
          chunks.map((chunk, i) => ({ file: batchFile(layout, chunk.range.b), data: () => takeText(i) })),
        );
      } catch (error) {
        written = chunks.map(() => error as Error);
      }
      const eachMs = (performance.now() - started) / chunks.length;
      written.forEach((error, i) => {
        if (error === undefined) grouped.set(i, eachMs);
        else ctx.log.warn('grouped batch write failed; writing it alone', { batchId: chunks[i]!.range.b, error: error.message });
      });
    }
    // Once one batch has failed every attempt, the later ones of this flush get one attempt
    // each before they are parked: a folder that refused a batch FLUSH_ATTEMPTS times (EPERM, a
    // read-only or full disk) refuses the next too, and 2,000 batches × the backoff was minutes.
    let attempts = FLUSH_ATTEMPTS;
    for (const [i, chunk] of chunks.entries()) {
      const started = performance.now();
      const { batch } = batchAt(i);
      const entries = batch.entries;
      const file = batchFile(layout, chunk.range.b);
      metrics.totalOperations++;
      const groupedMs = grouped.get(i);
      const error = groupedMs !== undefined ? undefined : await writeWithRetries(file, () => writeBatchFile(ctx.fs, file, batchAt(i).text || serializeBatch(batch.batchId, now, entries).text), attempts);
      if (error !== undefined) attempts = 1;
      if (error === undefined) {
        metrics.successfulOperations++;
        recordFlush(metrics, chunk.trigger, groupedMs ?? performance.now() - started);
        done.push(chunk.range);
        counts.push(entries.length);
        outcome.flushed.push({ batchId: chunk.range.b, file: path.relative(ctx.dataRoot, file), entryCount: entries.length, trigger: chunk.trigger });
        continue;
      }
      // A rename that landed before a later step failed (e.g. the directory fsync) must not
      // also be parked: the entries would then be in two places.
      const landed = safeRead(() => readBatchFile(ctx.fs, file));
      if (landed && 'batch' in landed && landed.batch.checksum === batch.checksum) {
        done.push(chunk.range);
        counts.push(entries.length);
        outcome.flushed.push({ batchId: chunk.range.b, file: path.relative(ctx.dataRoot, file), entryCount: entries.length, trigger: chunk.trigger });
        continue;
      }
      // Layer 1 exhausted: park the batch for the recovery pass (SPEC §5).
      metrics.failedFlushes++;
      const failed: FailedBatchFile = { ...batch, failedAt: now, retryCount: 0, lastRetryAt: null, lastError: error, nextRetryAt: now };
      const target = failedFile(layout, chunk.range.b);
      try {
        lock.assertHeld();
        ctx.fs.mkdirp(layout.recovery);
        ctx.fs.writeFileDurable(target, JSON.stringify(failed));
      } catch (parkError) {
        outcome.stuck = `${error}; the failed batch could not be parked either (${(parkError as Error).message}); its ${entries.length} entries stay in the journal`;
        ctx.log.error('flush failed and could not park the batch', { batchId: chunk.range.b, error, parkError: String(parkError) });
        // Later chunks stay pending too (commits must stay a prefix), so the files the group
        // write already landed for them go, or their entries would be stored twice.
        for (let j = i + 1; j < chunks.length; j++) if (grouped.has(j)) ctx.fs.removeDurable(batchFile(layout, chunks[j]!.range.b));
        return { outcome, done, counts, stuckFrom: i };
      }
      ctx.log.error('flush failed; batch parked for recovery', { batchId: chunk.range.b, file: target, error });
      done.push({ ...chunk.range, failed: true });
      counts.push(entries.length);
      outcome.failed.push({ batchId: chunk.range.b, file: path.relative(ctx.dataRoot, target), entryCount: entries.length, error });
    }
    return { outcome, done, counts };
  };

  const store: OpenStore = {
    layout,
    journal,
    index,
    metrics,
    quarantine,
    resumed: [],
    ingest(entries, options = {}) {
      const { fresh, duplicates } = freshOf(entries);
      return appendFresh(fresh, duplicates, options);
    },
    async flush(options = {}) {
      const now = ctx.now();
      const pending = journal.pending;
      const plan = planFlush({
        pendingAppendedAt: pending.map((p) => p.appendedAt),
        now,
        batchSize: batchSizeNow(pending),
        flushThreshold: config.flushThreshold,
        maxAge: config.maxAge,
        manual: options.manual,
      });
      if (plan.length === 0) return { flushed: [], failed: [] };
      let offset = 0;
      const chunks = plan.map((p) => {
        const slice = pending.slice(offset, offset + p.count);
        offset += p.count;
        return { trigger: p.trigger, entries: slice.map((je) => je.entry), range: { b: newBatchId(now), from: slice[0]!.seq, to: slice[slice.length - 1]!.seq } as BatchRange };
      });
      lock.assertHeld();
      journal.intent(
        chunks.map((c) => c.range),
        now,
      );
      const { outcome, done, counts } = await writeBatches(chunks, now);
      lock.assertHeld();
      if (done.length > 0) journal.commit(done, ctx.now(), counts);
      else journal.abort(ctx.now());
      return outcome;
    },
    async ingestBulk(entries, options = {}) {
      const { fresh, duplicates } = freshOf(entries);
      const P = journal.pending.length;
      const batchSize = config.batchSize === 'auto' ? batchSizeNow(fresh.map((entry) => ({ seq: 0, appendedAt: 0, entry }))) : config.batchSize;
      // Entries that complete the pending partial batch go to the journal (the size trigger then
      // cuts that batch as before); whole batches of the rest go straight to batch files; the
      // remainder (< batchSize) goes to the journal: the batches are the ones ingest + flush cut.
      const head = P % batchSize === 0 ? 0 : Math.min(fresh.length, batchSize - (P % batchSize));
      const wholeBatches = Math.floor((fresh.length - head) / batchSize);
      if (wholeBatches < BULK_MIN_BATCHES) {
        const { accepted } = appendFresh(fresh, duplicates, options);
        const acceptedIds = accepted.map((je) => je.entry.entryId);
        options.onDurable?.(acceptedIds);
        return { acceptedIds, duplicates, flushed: [], failed: [] };
      }
      if (options.rateLimit !== false) enforceRateLimit(ctx, layout, fresh);
      metrics.totalOperations++;
      const directEnd = head + wholeBatches * batchSize;
      const now = ctx.now();
      lock.assertHeld();
      // One append (one fdatasync) for the head and the remainder.
      const appended = journal.append(fresh.slice(0, head).concat(fresh.slice(directEnd)), now);
      options.onDurable?.(appended.map((je) => je.entry.entryId));
      const chunks: BatchChunk[] = [];
      for (let from = head; from < directEnd; from += batchSize) {
        const slice = fresh.slice(from, from + batchSize);
        chunks.push({ trigger: 'size', entries: slice, range: { b: newBatchId(now), from: 0, to: 0, n: slice.length } });
      }
      lock.assertHeld();
      journal.intent(
        chunks.map((c) => c.range),
        now,
      );
      // While the batch files are written (thread-pool work), the id index's lines for them are
      // computed, yielding every INDEX_PREPARE_SLICE ids so the group write's callbacks run in
      // between. Nothing reaches the index before the files are durable.
      const written = writeBatches(chunks, now).then(
        (value) => ({ value }),
        (error: unknown) => ({ error }),
      );
      const batches = chunks.map((chunk) => ({ batchId: chunk.range.b, entryIds: chunk.entries.map((e) => e.entryId) }));
      const prepared = await index.prepare(batches, { yieldEvery: INDEX_PREPARE_SLICE });
      const settled = await written;
      if ('error' in settled) throw settled.error;
      const { outcome, done, counts, stuckFrom } = settled.value;
      const acceptedIds = appended.map((je) => je.entry.entryId);
      // Ids of stored batches go to the index before the commit: a re-run after any crash from
      // here on finds them (resolveOpenIntent indexes a found batch of an open intent too).
      const storedIds: string[] = [];
      for (let i = 0; i < done.length; i++) for (const id of batches[i]!.entryIds) storedIds.push(id);
      lock.assertHeld();
      if (done.length === chunks.length) await index.commit(prepared);
      // Some batch was neither written nor parked (rare): index only those that were.
      else await index.add(done.flatMap((range, i) => batches[i]!.entryIds.map((entryId) => ({ entryId, batchId: range.b }))));
      for (const id of storedIds) acceptedIds.push(id);
      options.onDurable?.(storedIds);
      if (stuckFrom !== undefined) {
        // Neither written nor parked: these entries stay safe in the journal, pending.
        const rest = chunks.slice(stuckFrom).flatMap((c) => c.entries);
        lock.assertHeld();
        const safe = journal.append(rest, now).map((je) => je.entry.entryId);
        options.onDurable?.(safe);
        for (const id of safe) acceptedIds.push(id);
      }
      lock.assertHeld();
      if (done.length > 0) journal.commit(done, ctx.now(), counts);
      else journal.abort(ctx.now());
      metrics.successfulOperations++;
      metrics.acceptedEntries += acceptedIds.length;
      metrics.duplicateEntries += duplicates;
      return { acceptedIds, duplicates, flushed: outcome.flushed, failed: outcome.failed, ...(outcome.stuck ? { stuck: outcome.stuck } : {}) };
    },
    reserveRateLimit(perUser) {
      lock.assertHeld();
      reserveRate(ctx, layout, perUser);
    },
    pendingSummary() {
      const oldest = journal.pending[0];
      return { pending: journal.pending.length, batchAgeMs: oldest ? Math.max(0, ctx.now() - oldest.appendedAt) : 0 };
    },
    assertLockHeld() {
      lock.assertHeld();
    },
  };
  return store;
}
