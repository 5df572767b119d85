/**
 * Paths inside a data root (SPEC §2). Pure: nothing is created here.
 */
import * as path from 'node:path';

/** Absolute paths of every place the store uses under `dataRoot`. */
export interface StoreLayout {
  dataRoot: string;
  /** `aggregated/`: completed batch files `batch_<timestamp>_<suffix>.json`. */
  aggregated: string;
  /** `aggregated/journal/`: the durable buffer (journal.log) and the lock. */
  journal: string;
  /** `aggregated/journal/store` — the file whose `.lock` directory is the store lock. */
  lockTarget: string;
  /** `aggregated/index/`: entry-id index shards for duplicate detection. */
  index: string;
  /** `aggregated/metrics.json`. */
  metrics: string;
  /** `aggregated/recovery/`: `<batchId>.failed.json`. */
  recovery: string;
  /** `aggregated/recovery/abandoned/`. */
  abandoned: string;
  /** `aggregated/recovery/errors/`: quarantined corrupt bytes and files. */
  errors: string;
  /** `aggregated/recovery/migrated/`: original bytes of files upgraded by `aggregate-migrate` (`<name>.orig`). */
  migrated: string;
  /** `health/`. */
  health: string;
  /** `logs/`. */
  logs: string;
  /** `cache/`: derived, disposable files (transpiled config). */
  cache: string;
  /** `user/`: FlowForge session files (input). */
  user: string;
  /** `sync/`: team sync state — `clone.json` (this data root's clone id) and the sync lock. */
  sync: string;
  /**
   * `team/`: other clones' batch files fetched by `aggregate-sync`, as
   * `team/<clone id>/batch_<ms>_<hex>.json` (exact bytes, immutable; never cleaned up).
   */
  team: string;
}

export function storeLayout(dataRoot: string): StoreLayout {
  const aggregated = path.join(dataRoot, 'aggregated');
  const journal = path.join(aggregated, 'journal');
  const recovery = path.join(aggregated, 'recovery');
  return {
    dataRoot,
    aggregated,
    journal,
    lockTarget: path.join(journal, 'store'),
    index: path.join(aggregated, 'index'),
    metrics: path.join(aggregated, 'metrics.json'),
    recovery,
    abandoned: path.join(recovery, 'abandoned'),
    errors: path.join(recovery, 'errors'),
    migrated: path.join(recovery, 'migrated'),
    health: path.join(dataRoot, 'health'),
    logs: path.join(dataRoot, 'logs'),
    cache: path.join(dataRoot, 'cache'),
    user: path.join(dataRoot, 'user'),
    sync: path.join(dataRoot, 'sync'),
    team: path.join(dataRoot, 'team'),
  };
}

/** A batch id as the product makes them: `batch_<epoch ms>_<8 hex>`. */
export const BATCH_ID_PATTERN = /^batch_\d{13}_[0-9a-f]{8}$/;

/**
 * A batch id kept from the older format by `aggregate-migrate`: `batch_` then up to 120
 * characters without path separators or control characters, so `<id>.json` and
 * `<id>.failed.json` stay file names inside their folder and the id fits an index line.
 */
// eslint-disable-next-line no-control-regex
export const LEGACY_BATCH_ID_PATTERN = /^batch_[^/\\\u0000-\u001f\u007f]{1,120}$/;

/** Whether `id` is a batch id of either form: one the product makes, or one `aggregate-migrate` kept. */
export const isBatchId = (id: string): boolean => BATCH_ID_PATTERN.test(id) || LEGACY_BATCH_ID_PATTERN.test(id);

/** What follows the batch id in the name of a batch file, a failed batch, an abandoned batch. */
export type BatchFileSuffix = '.json' | '.failed.json' | '.abandoned.json';

/**
 * The batch id a file name names (`<id><suffix>`), or undefined. The id is either form: one the
 * product makes (BATCH_ID_PATTERN) or one `aggregate-migrate` kept (LEGACY_BATCH_ID_PATTERN);
 * whether a legacy id fits the file's content (it must say `migrated`) is the reader's check.
 * Temp files of an atomic write (`<name>.<digits>`) never match. Pure: no disk access.
 */
export function batchIdOfName(name: string, suffix: BatchFileSuffix): string | undefined {
  if (!name.endsWith(suffix)) return undefined;
  const id = name.slice(0, name.length - suffix.length);
  return isBatchId(id) ? id : undefined;
}

/** Whether `batchId` may name a batch whose file says `migrated` (then a legacy id is fine too). */
export function acceptableBatchId(batchId: string, migrated: unknown): boolean {
  return BATCH_ID_PATTERN.test(batchId) || (migrated !== undefined && LEGACY_BATCH_ID_PATTERN.test(batchId));
}

/** Batch file path for an id (the id was checked against BATCH_ID_PATTERN by the caller). */
export const batchFile = (layout: StoreLayout, batchId: string): string => path.join(layout.aggregated, `${batchId}.json`);
export const failedFile = (layout: StoreLayout, batchId: string): string => path.join(layout.recovery, `${batchId}.failed.json`);
export const abandonedFile = (layout: StoreLayout, batchId: string): string => path.join(layout.abandoned, `${batchId}.abandoned.json`);
