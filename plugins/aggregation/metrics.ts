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
    return normalizeMetrics(JSON.parse(fsPort.readFile(file).toString('utf8')));
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'ENOENT') onUnreadable?.(error);
    return emptyMetrics();
  }
}

/** A finite count ≥ 0, else 0 (a field an older or hand-edited metrics.json lacks or mangled). */
const count = (value: unknown): number => (typeof value === 'number' && Number.isFinite(value) && value >= 0 ? value : 0);

/**
 * Fills in what an older metrics.json lacks: every counter missing or not a non-negative number
 * reads 0, per-trigger and recovery-outcome counters default to 0, and the histogram gets one
 * count per FLUSH_BUCKETS_MS bucket plus +Inf (an old file with other buckets is not
 * re-binned: its counts restart, since they cannot be mapped to these bounds).
 */
export function normalizeMetrics(raw: unknown): MetricsFile {
  const parsed = (raw !== null && typeof raw === 'object' ? raw : {}) as Partial<Record<keyof MetricsFile, unknown>>;
  const base = emptyMetrics();
  const rawRecovery = (parsed.recovery !== null && typeof parsed.recovery === 'object' ? parsed.recovery : {}) as Record<string, unknown>;
  const rawTriggers = (parsed.flushesByTrigger !== null && typeof parsed.flushesByTrigger === 'object' ? parsed.flushesByTrigger : {}) as Record<string, unknown>;
  const histogram = Array.isArray(parsed.flushHistogram) && parsed.flushHistogram.length === base.flushHistogram.length ? parsed.flushHistogram.map(count) : base.flushHistogram;
  return {
    version: 1,
    totalOperations: count(parsed.totalOperations),
    successfulOperations: count(parsed.successfulOperations),
    acceptedEntries: count(parsed.acceptedEntries),
    duplicateEntries: count(parsed.duplicateEntries),
    flushes: count(parsed.flushes),
    flushesByTrigger: Object.fromEntries(Object.entries(rawTriggers).map(([trigger, n]) => [trigger, count(n)])),
    totalFlushTimeMs: count(parsed.totalFlushTimeMs),
    maxFlushTimeMs: count(parsed.maxFlushTimeMs),
    flushHistogram: histogram,
    retryCount: count(parsed.retryCount),
    failedFlushes: count(parsed.failedFlushes),
    recovery: {
      processed: count(rawRecovery.processed),
      succeeded: count(rawRecovery.succeeded),
      failed: count(rawRecovery.failed),
      abandoned: count(rawRecovery.abandoned),
      quarantined: count(rawRecovery.quarantined),
    },
  };
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

/** Flush triggers (SPEC §5), each always reported (0 when it never fired). */
export const FLUSH_TRIGGERS = ['size', 'threshold', 'age', 'manual'] as const;

/**
 * The `metrics` object of `aggregate-status` (SPEC §3). Times in ms; successRate in 0–1.
 * `flushHistogram.counts[i]` counts flushes that took at most `bucketsMs[i]` ms and more than
 * the bound before it (not cumulative); the last count, one past `bucketsMs`, is the +Inf
 * bucket. `recoveryOutcomes` are totals over every recovery pass this data root has run.
 */
export function summarizeMetrics(m: MetricsFile) {
  const flushesByTrigger: Record<string, number> = Object.fromEntries(FLUSH_TRIGGERS.map((t) => [t, 0]));
  for (const [trigger, n] of Object.entries(m.flushesByTrigger)) flushesByTrigger[trigger] = n;
  return {
    totalOperations: m.totalOperations,
    successfulOperations: m.successfulOperations,
    successRate: m.totalOperations === 0 ? 1 : m.successfulOperations / m.totalOperations,
    averageFlushTime: m.flushes === 0 ? 0 : m.totalFlushTimeMs / m.flushes,
    maxFlushTime: m.maxFlushTimeMs,
    p50FlushTime: flushQuantileMs(m, 0.5),
    p99FlushTime: flushQuantileMs(m, 0.99),
    retryCount: m.retryCount,
    failedFlushes: m.failedFlushes,
    flushes: m.flushes,
    flushesByTrigger,
    totalFlushTime: m.totalFlushTimeMs,
    flushHistogram: { bucketsMs: [...FLUSH_BUCKETS_MS], counts: [...m.flushHistogram] },
    acceptedEntries: m.acceptedEntries,
    duplicateEntries: m.duplicateEntries,
    recoveryOutcomes: { succeeded: m.recovery.succeeded, failed: m.recovery.failed, abandoned: m.recovery.abandoned, quarantined: m.recovery.quarantined },
  };
}
