/**
 * Health evaluation (SPEC §7; seed "Health Status Format" thresholds): success rate < 90 %
 * warning, < 80 % critical; average flush time over `performance.targetTime` (500 ms) a
 * performance warning, over `performance.maxTime` (1000 ms, when given) critical; failed,
 * abandoned and quarantined files; a pending batch older than twice `maxAge` (the age trigger
 * should have fired); system memory use over 80 % a resource warning; free disk space of the
 * data root under 5 % a warning, under 100 MiB critical (a journal append could fail); id
 * index shard files missing that must exist (a lost index: a re-import would store its ids
 * twice) critical. Pure: the caller gathers the numbers.
 */

/** Overall status: `healthy` (no issue), `degraded` (warnings), `unhealthy` (a critical issue). */
export type HealthStatus = 'healthy' | 'degraded' | 'unhealthy';
/** Worst severity among the issues; `none` when there are none. */
export type Severity = 'none' | 'warning' | 'critical';

/** Memory use (percent, 0–100) above which a resource warning is raised (seed: 80 %). */
export const MEMORY_WARN_PERCENT = 80;
/** Free disk space (percent of the data root's file system) below which a warning is raised. */
export const DISK_WARN_FREE_PERCENT = 5;
/** Free disk space (bytes) below which a critical issue is raised: 100 MiB. */
export const DISK_CRITICAL_FREE_BYTES = 100 * 1024 * 1024;

/** One finding of {@link evaluateHealth}; `type` is also the `type` of the alert it becomes. */
export interface HealthIssue {
  type: 'success-rate' | 'performance' | 'failed-batches' | 'abandoned-batches' | 'quarantined-files' | 'stale-pending' | 'memory' | 'disk-space' | 'hook-failures' | 'id-index';
  severity: Exclude<Severity, 'none'>;
  message: string;
}

/** Numbers gathered by the caller (status handler, health check); units as noted per field. */
export interface HealthInput {
  /** 0–1. */
  successRate: number;
  totalOperations: number;
  /** Milliseconds. */
  averageFlushTime: number;
  targetTime: number;
  failed: number;
  abandoned: number;
  quarantined: number;
  /** Milliseconds since the oldest pending entry was appended. */
  batchAgeMs: number;
  maxAge: number;
  /** `performance.maxTime`, ms: average flush time above it is critical. Optional. */
  maxTime?: number;
  /** System memory in use, percent 0–100. Optional (not checked when absent). */
  memoryPercent?: number;
  /** Disk space of the data root's file system, bytes. Optional (not checked when absent). */
  disk?: { freeBytes: number; totalBytes: number };
  /** Git-hook calls that failed in the last 24 h (their entries were not recorded). Optional. */
  hookFailures?: { count: number; last: string; lastAt: number };
  /**
   * Id index shard files present (`ids-xx.tsv`, 0–256) and entries whose ids should be in the
   * index by now (in batch files, not still listed by the journal). Optional.
   */
  idIndex?: { shards: number; indexedEntries: number };
}

/**
 * Entries from which every one of the 256 index shards is all but certain to hold an id: the
 * chance that a given shard has none of n ids is (255/256)^n, about 3 × 10⁻⁹ for 5,000 (so a
 * missing shard then means a lost one).
 */
export const INDEX_ALL_SHARDS_AFTER = 5000;

/** Result of {@link evaluateHealth}: the `health` object of `aggregate-status`. */
export interface HealthSummary {
  status: HealthStatus;
  severity: Severity;
  issues: HealthIssue[];
}

/**
 * Turns the gathered numbers into a status: `unhealthy` when any issue is critical, `degraded`
 * when any is a warning, else `healthy`. Issues come in a fixed order (success rate,
 * performance, failed, abandoned, quarantined, stale pending, memory, disk). Never throws.
 */
export function evaluateHealth(h: HealthInput): HealthSummary {
  const issues: HealthIssue[] = [];
  const pct = (x: number) => `${(x * 100).toFixed(1)} %`;
  if (h.totalOperations > 0 && h.successRate < 0.8) issues.push({ type: 'success-rate', severity: 'critical', message: `success rate ${pct(h.successRate)} is below 80 %` });
  else if (h.totalOperations > 0 && h.successRate < 0.9) issues.push({ type: 'success-rate', severity: 'warning', message: `success rate ${pct(h.successRate)} is below 90 %` });
  if (h.maxTime !== undefined && h.averageFlushTime > h.maxTime) issues.push({ type: 'performance', severity: 'critical', message: `average flush time ${h.averageFlushTime.toFixed(1)} ms exceeds the maximum ${h.maxTime} ms` });
  else if (h.averageFlushTime > h.targetTime) issues.push({ type: 'performance', severity: 'warning', message: `average flush time ${h.averageFlushTime.toFixed(1)} ms exceeds ${h.targetTime} ms` });
  if (h.failed > 0) issues.push({ type: 'failed-batches', severity: 'warning', message: `${h.failed} failed batch(es) waiting in recovery/` });
  if (h.abandoned > 0) issues.push({ type: 'abandoned-batches', severity: 'critical', message: `${h.abandoned} batch(es) abandoned after the retry limit (recovery/abandoned/)` });
  if (h.quarantined > 0) issues.push({ type: 'quarantined-files', severity: 'warning', message: `${h.quarantined} quarantined file(s) in recovery/errors/` });
  if (h.hookFailures && h.hookFailures.count > 0) {
    issues.push({
      type: 'hook-failures',
      severity: 'warning',
      message: `${h.hookFailures.count} git-hook call(s) failed in the last 24 h, so their commits or checkouts were not recorded; last at ${new Date(h.hookFailures.lastAt).toISOString()}: ${h.hookFailures.last} (fix it, then \`aggregate --source=git-log\` imports the missed commits)`,
    });
  }
  if (h.idIndex && h.idIndex.indexedEntries > 0 && (h.idIndex.shards === 0 || (h.idIndex.indexedEntries >= INDEX_ALL_SHARDS_AFTER && h.idIndex.shards < 256))) {
    issues.push({
      type: 'id-index',
      severity: 'critical',
      message: `the id index has ${h.idIndex.shards} of 256 shard files although ${h.idIndex.indexedEntries} stored entries are indexed: a re-import would store the ids of the lost shards a second time (run aggregate-validate --repair, which rebuilds it)`,
    });
  }
  if (h.batchAgeMs > 2 * h.maxAge) issues.push({ type: 'stale-pending', severity: 'warning', message: `oldest pending entry is ${Math.round(h.batchAgeMs / 1000)} s old (maxAge ${h.maxAge} ms)` });
  if (h.memoryPercent !== undefined && h.memoryPercent > MEMORY_WARN_PERCENT) {
    issues.push({ type: 'memory', severity: 'warning', message: `memory use ${h.memoryPercent.toFixed(1)} % is above ${MEMORY_WARN_PERCENT} %` });
  }
  if (h.disk && h.disk.totalBytes > 0) {
    const freePct = (h.disk.freeBytes / h.disk.totalBytes) * 100;
    const mib = (h.disk.freeBytes / 1024 / 1024).toFixed(1);
    if (h.disk.freeBytes < DISK_CRITICAL_FREE_BYTES) issues.push({ type: 'disk-space', severity: 'critical', message: `only ${mib} MiB free on the data root's disk (below 100 MiB)` });
    else if (freePct < DISK_WARN_FREE_PERCENT) issues.push({ type: 'disk-space', severity: 'warning', message: `only ${freePct.toFixed(1)} % (${mib} MiB) free on the data root's disk (below ${DISK_WARN_FREE_PERCENT} %)` });
  }
  const severity: Severity = issues.some((i) => i.severity === 'critical') ? 'critical' : issues.length > 0 ? 'warning' : 'none';
  return { status: severity === 'critical' ? 'unhealthy' : severity === 'warning' ? 'degraded' : 'healthy', severity, issues };
}
