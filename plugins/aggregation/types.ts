/**
 * Core data shapes of the aggregation plugin (SPEC §4–5; seed "Batch File Format").
 */

/** A validated, normalized entry as stored in the journal and in batch files. */
export interface Entry {
  /** Stable id; derived from the other fields when the caller gave none (SPEC §4). */
  entryId: string;
  userId: string;
  action: string;
  /** Epoch milliseconds (integer). */
  timestamp: number;
  metadata?: Record<string, unknown>;
}

/** A completed batch file `aggregated/batch_<timestamp>_<suffix>.json`. */
export interface BatchFile {
  batchId: string;
  /** Flush time, epoch milliseconds. */
  timestamp: number;
  version: '2.0.0';
  entries: Entry[];
  entryCount: number;
  /** true when written by the recovery pass. */
  recovered: boolean;
  /** `sha256:<hex>` of the canonical JSON of `entries`. */
  checksum: string;
  /** Present when `aggregate-migrate` upgraded this file from the older format. */
  migrated?: MigratedFrom;
}

/** Provenance of a file upgraded by `aggregate-migrate`. */
export interface MigratedFrom {
  /** The file's `version` before the upgrade (null: it had none). */
  from: string | null;
  /** Epoch ms of the upgrade. */
  at: number;
  /** Where the original bytes are kept, relative to the data root. */
  original: string;
}

export type FlushTrigger = 'size' | 'threshold' | 'age' | 'manual';

/** One flushed batch in a handler result. */
export interface FlushedBatch {
  batchId: string;
  /** Path of the batch file, relative to the data root. */
  file: string;
  entryCount: number;
  trigger: FlushTrigger;
}
