/**
 * Counters persisted across invocations in `aggregated/metrics.json` (SPEC §7), written
 * atomically. Losing the latest update in a power cut costs a counter, never an entry, so the
 * write skips the fsyncs that entries and batches get.
 */
import type { FsPort } from '../../src/core/fs-port.js';

/** Upper bounds (ms) of the flush-duration histogram buckets; the last bucket is +Inf. */
export const FLUSH_BUCKETS_MS = [1, 2, 5, 10, 25, 50, 100, 250, 500, 1000, 2500] as const;

export interface MetricsFile {
  version: 1;
  /** Store operations (appends, flushes) attempted. */
  totalOperations: number;
  /** Store operations that completed. */
  successfulOperations: number;
  /** Entries accepted (stored once). */
  acceptedEntries: number;
  /** Entries rejected as duplicates of a stored id. */
  duplicateEntries: number;
  /** Batches flushed, total and per trigger. */
  flushes: number;
  flushesByTrigger: Record<string, number>;
  /** Sum and max of flush durations, milliseconds. */
  totalFlushTimeMs: number;
  maxFlushTimeMs: number;
  /** Counts per FLUSH_BUCKETS_MS bucket (+1 for +Inf), not cumulative. */
  flushHistogram: number[];
  /** In-process write retries (layer 1). */
  retryCount: number;
  /** Batches whose every in-process attempt failed (sent to recovery/). */
  failedFlushes: number;
  /** Recovery pass outcomes. */
  recovery: { processed: number; succeeded: number; failed: number; abandoned: number; quarantined: number };
}

export function emptyMetrics(): MetricsFile {
  return {
    version: 1,
    totalOperations: 0,
    successfulOperations: 0,
    acceptedEntries: 0,
    duplicateEntries: 0,
    flushes: 0,
    flushesByTrigger: {},
    totalFlushTimeMs: 0,
    maxFlushTimeMs: 0,
    flushHistogram: new Array(FLUSH_BUCKETS_MS.length + 1).fill(0),
    retryCount: 0,
    failedFlushes: 0,
    recovery: { processed: 0, succeeded: 0, failed: 0, abandoned: 0, quarantined: 0 },
  };
}

/**
 * Reads metrics.json; a missing or unreadable file gives fresh counters (metrics are advisory).
 * `onUnreadable` hears about a file that exists but does not parse, so it is not reset silently.
 */
export function readMetrics(fsPort: FsPort, file: string, onUnreadable?: (error: unknown) => void): MetricsFile {
  try {
    const parsed = JSON.parse(fsPort.readFile(file).toString('utf8')) as Partial<MetricsFile>;
    const base = emptyMetrics();
    return { ...base, ...parsed, recovery: { ...base.recovery, ...parsed.recovery }, flushesByTrigger: { ...parsed.flushesByTrigger } };
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'ENOENT') onUnreadable?.(error);
    return emptyMetrics();
  }
}

/**
 * Saves metrics atomically (never a torn file) but without fsyncs: counters are advisory, and
 * every fsync here would lengthen the store lock's critical section on every call.
 */
export function writeMetrics(fsPort: FsPort, file: string, metrics: MetricsFile): void {
  fsPort.atomicReplace(file, JSON.stringify(metrics), { fsync: false });
}

/** Records one flush of `durationMs` milliseconds. */
export function recordFlush(m: MetricsFile, trigger: string, durationMs: number): void {
  m.flushes++;
  m.flushesByTrigger[trigger] = (m.flushesByTrigger[trigger] ?? 0) + 1;
  m.totalFlushTimeMs += durationMs;
  m.maxFlushTimeMs = Math.max(m.maxFlushTimeMs, durationMs);
  let bucket = FLUSH_BUCKETS_MS.findIndex((b) => durationMs <= b);
  if (bucket === -1) bucket = FLUSH_BUCKETS_MS.length;
  m.flushHistogram[bucket] = (m.flushHistogram[bucket] ?? 0) + 1;
}

/** Quantile (0–1) of flush time in ms from the histogram: the bucket's upper bound. */
export function flushQuantileMs(m: MetricsFile, q: number): number | null {
  const total = m.flushHistogram.reduce((a, b) => a + b, 0);
  if (total === 0) return null;
  let seen = 0;
  for (let i = 0; i < m.flushHistogram.length; i++) {
    seen += m.flushHistogram[i] ?? 0;
    if (seen >= q * total) return FLUSH_BUCKETS_MS[i] ?? m.maxFlushTimeMs;
  }
  return m.maxFlushTimeMs;
}

/** The `metrics` object of `aggregate-status` (SPEC §3). Times in ms; successRate in 0–1. */
export function summarizeMetrics(m: MetricsFile) {
  return {
    totalOperations: m.totalOperations,
    successRate: m.totalOperations === 0 ? 1 : m.successfulOperations / m.totalOperations,
    averageFlushTime: m.flushes === 0 ? 0 : m.totalFlushTimeMs / m.flushes,
    maxFlushTime: m.maxFlushTimeMs,
    p50FlushTime: flushQuantileMs(m, 0.5),
    p99FlushTime: flushQuantileMs(m, 0.99),
    retryCount: m.retryCount,
    failedFlushes: m.failedFlushes,
    flushes: m.flushes,
    flushesByTrigger: m.flushesByTrigger,
    acceptedEntries: m.acceptedEntries,
    duplicateEntries: m.duplicateEntries,
  };
}
