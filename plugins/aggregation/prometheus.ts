/**
 * The `aggregate-status` summary as Prometheus metrics, in the text exposition format 0.0.4
 * (https://prometheus.io/docs/instrumenting/exposition_formats/), built with prom-client.
 * Used by `aggregate-status --format=prometheus` and by `serve --metrics-port=N` (GET /metrics).
 *
 * Every render builds a fresh prom-client `Registry` (never the library's global default
 * registry, and no default process metrics): the numbers come from the status result, which
 * reads them from the store (`metrics.json`, the journal's totals, the recovery folders), so
 * counters keep counting across processes and restarts. A counter restarts from 0 only when
 * metrics.json is lost or unreadable, which Prometheus's `rate()` treats as a counter reset.
 *
 * Names follow https://prometheus.io/docs/practices/naming/: prefix `flowforge_aggregation_`,
 * base units (seconds), `_total` on counters. This module and prom-client are both imported
 * with `import()` only when an exposition is asked for, so the git-hook path never loads them.
 */
import type { Metric, Registry } from 'prom-client';
import type { AggregateStatusResult } from './handlers/aggregate-status.js';

/** Prefix of every metric this product exports. */
export const METRIC_PREFIX = 'flowforge_aggregation_';

/** Health statuses, each always present on `flowforge_aggregation_health_status{status}`. */
export const HEALTH_STATUSES = ['healthy', 'degraded', 'unhealthy'] as const;

/** Recovery outcomes, each always present on `flowforge_aggregation_recovery_outcomes_total{outcome}`. */
export const RECOVERY_OUTCOMES = ['succeeded', 'failed', 'abandoned', 'quarantined'] as const;

/** A rendered exposition: the HTTP `Content-Type` prom-client gives for it, and the text. */
export interface Exposition {
  contentType: string;
  body: string;
}

/** The status summary as the text exposition format (one fresh registry per call). */
export async function renderPrometheus(status: AggregateStatusResult): Promise<Exposition> {
  const registry = await buildRegistry(status);
  return { contentType: registry.contentType, body: await registry.metrics() };
}

/**
 * Builds a fresh registry holding every metric of `status`. The flush-duration histogram is
 * exported from the persisted bucket counts (see {@link persistedHistogram}); all others are
 * prom-client Gauges and Counters set once.
 */
export async function buildRegistry(status: AggregateStatusResult): Promise<Registry> {
  const { Registry, Gauge, Counter } = await import('prom-client');
  const registry = new Registry();
  const registers = [registry];
  const gauge = (name: string, help: string, value: number) => new Gauge({ name: METRIC_PREFIX + name, help, registers }).set(value);
  const counter = (name: string, help: string, value: number) => new Counter({ name: METRIC_PREFIX + name, help, registers }).inc(value);
  const m = status.metrics;

  gauge('pending_entries', 'Entries acknowledged and waiting in the journal for their batch.', status.pending);
  gauge('oldest_pending_age_seconds', 'Age of the oldest pending entry in seconds (0 when none is pending).', status.batchAgeMs / 1000);
  gauge('batches', 'Batch files written to aggregated/ (including recovered ones).', status.batches.count);
  gauge('batch_entries', 'Entries stored in batch files.', status.batches.entries);
  gauge('last_flush_timestamp_seconds', 'Time of the last flush that wrote a batch file, Unix seconds (0 when never).', status.lastFlushAt === null ? 0 : status.lastFlushAt / 1000);

  const flushes = new Counter({ name: `${METRIC_PREFIX}flushes_total`, help: 'Batch files written by a flush, by trigger (size, threshold, age, manual).', labelNames: ['trigger'], registers });
  // summarizeMetrics lists every trigger of FLUSH_TRIGGERS, 0 when it never fired.
  for (const [trigger, n] of Object.entries(m.flushesByTrigger)) flushes.inc({ trigger }, n);
  registry.registerMetric(persistedHistogram(`${METRIC_PREFIX}flush_duration_seconds`, 'Time to write one batch file durably, seconds.', m.flushHistogram, m.totalFlushTime));
  counter('failed_flushes_total', 'Batches whose every in-process write attempt failed (sent to recovery/).', m.failedFlushes);
  counter('flush_retries_total', 'In-process retries of batch writes.', m.retryCount);

  counter('operations_total', 'Store operations (appends and flushes) attempted.', m.totalOperations);
  counter('operation_failures_total', 'Store operations that did not complete.', m.totalOperations - m.successfulOperations);
  gauge('success_ratio', 'Completed store operations over attempted ones, 0 to 1 (1 when none was attempted).', m.successRate);
  counter('accepted_entries_total', 'Entries accepted and stored once.', m.acceptedEntries);
  counter('duplicate_entries_total', 'Entries dropped as duplicates of a stored entry id.', m.duplicateEntries);

  const outcomes = new Counter({ name: `${METRIC_PREFIX}recovery_outcomes_total`, help: 'Failed batches handled by recovery passes, by outcome; quarantined counts unreadable files.', labelNames: ['outcome'], registers });
  for (const outcome of RECOVERY_OUTCOMES) outcomes.inc({ outcome }, m.recoveryOutcomes[outcome]);
  gauge('failed_batches', 'Failed batches in recovery/ awaiting a retry.', status.recovery.failed);
  gauge('abandoned_batches', 'Batches in recovery/abandoned/ after the retry limit (need a person).', status.recovery.abandoned);
  gauge('quarantined_files', 'Files in recovery/errors/ (corrupt journal bytes and unreadable files, kept for inspection).', status.recovery.errors);

  const health = new Gauge({ name: `${METRIC_PREFIX}health_status`, help: 'Health status: 1 for the current status, 0 for the others.', labelNames: ['status'], registers });
  for (const s of HEALTH_STATUSES) health.set({ status: s }, s === status.health.status ? 1 : 0);
  const issues = new Gauge({ name: `${METRIC_PREFIX}health_issues`, help: 'Open health issues, by severity.', labelNames: ['severity'], registers });
  for (const severity of ['warning', 'critical'] as const) issues.set({ severity }, status.health.issues.filter((i) => i.severity === severity).length);
  gauge('status_timestamp_seconds', 'When these numbers were read from the store, Unix seconds.', status.readAt / 1000);
  return registry;
}

/**
 * A histogram metric whose buckets were counted elsewhere (metrics.json), registered as a metric
 * object of its own: prom-client's `Histogram` only grows through `observe()`, which cannot
 * restore an exact `_sum`. The registry renders any registered object from its `get()` (the
 * same way prom-client's `AggregatorRegistry.aggregate` registers the histograms it merges),
 * so the lines are written by the library: `_bucket{le=…}` cumulative, then `+Inf`, `_sum`,
 * `_count`. `counts` are per bucket, not cumulative, the last one being +Inf; bounds and sum in
 * milliseconds, exported in seconds.
 */
export function persistedHistogram(name: string, help: string, histogram: { bucketsMs: readonly number[]; counts: readonly number[] }, sumMs: number): Metric {
  const values: Array<{ metricName: string; labels: Record<string, string | number>; value: number }> = [];
  let cumulative = 0;
  histogram.bucketsMs.forEach((boundMs, i) => {
    cumulative += histogram.counts[i] ?? 0;
    values.push({ metricName: `${name}_bucket`, labels: { le: boundMs / 1000 }, value: cumulative });
  });
  const count = cumulative + (histogram.counts[histogram.bucketsMs.length] ?? 0);
  values.push(
    { metricName: `${name}_bucket`, labels: { le: '+Inf' }, value: count },
    { metricName: `${name}_sum`, labels: {}, value: sumMs / 1000 },
    { metricName: `${name}_count`, labels: {}, value: count },
  );
  const data = { name, help, type: 'histogram', aggregator: 'sum', values };
  return { ...data, get: async () => data } as unknown as Metric;
}
