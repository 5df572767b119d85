/**
 * The flush policy (SPEC §5 triggers), pure: given the pending entries' append times and the
 * config, it says which batches to cut now. The journal and batch store know nothing of it.
 *
 * - `size`: never more than `batchSize` entries per batch: every full chunk is cut.
 * - `threshold`: the rest is cut once it reaches ⌈flushThreshold × batchSize⌉ entries.
 * - `age`: the rest is cut when its oldest entry was appended more than `maxAge` ms ago.
 * - `manual` (`aggregate-force`): everything is cut, in chunks of at most `batchSize`.
 */
import type { FlushTrigger } from './types.js';

export interface FlushPolicyInput {
  /** Append times (epoch ms) of the pending entries, oldest first. */
  pendingAppendedAt: readonly number[];
  now: number;
  batchSize: number;
  flushThreshold: number;
  /** Milliseconds. */
  maxAge: number;
  manual?: boolean;
}

/** A batch to cut: the next `count` oldest pending entries, and why. */
export interface PlannedBatch {
  count: number;
  trigger: FlushTrigger;
}

/** Target size of a batch file for `batchSize: "auto"`, bytes. */
export const AUTO_BATCH_TARGET_BYTES = 65_536;
export const AUTO_BATCH_MIN = 10;
export const AUTO_BATCH_MAX = 500;

/**
 * The batch size for `batchSize: "auto"`: ⌊64 KiB ÷ average serialized entry size⌋, clamped
 * to 10–500 entries. `entryBytes` are serialized sizes in bytes (a sample is enough); with no
 * sample it is 50, the seed's default.
 */
export function autoBatchSize(entryBytes: readonly number[]): number {
  if (entryBytes.length === 0) return 50;
  const average = entryBytes.reduce((a, b) => a + b, 0) / entryBytes.length;
  return Math.min(AUTO_BATCH_MAX, Math.max(AUTO_BATCH_MIN, Math.floor(AUTO_BATCH_TARGET_BYTES / Math.max(1, average))));
}

export function thresholdCount(batchSize: number, flushThreshold: number): number {
  // Guard against float noise such as 0.9 × 50 = 45.00000000000001.
  return Math.max(1, Math.ceil(Number((flushThreshold * batchSize).toFixed(9))));
}

export function planFlush(input: FlushPolicyInput): PlannedBatch[] {
  const { pendingAppendedAt, now, batchSize, maxAge } = input;
  const plan: PlannedBatch[] = [];
  let offset = 0;
  let remaining = pendingAppendedAt.length;
  if (input.manual) {
    while (remaining > 0) {
      const count = Math.min(batchSize, remaining);
      plan.push({ count, trigger: 'manual' });
      remaining -= count;
    }
    return plan;
  }
  while (remaining >= batchSize) {
    plan.push({ count: batchSize, trigger: 'size' });
    remaining -= batchSize;
    offset += batchSize;
  }
  if (remaining === 0) return plan;
  if (remaining >= thresholdCount(batchSize, input.flushThreshold)) {
    plan.push({ count: remaining, trigger: 'threshold' });
  } else if (now - pendingAppendedAt[offset]! > maxAge) {
    plan.push({ count: remaining, trigger: 'age' });
  }
  return plan;
}
