/**
 * Health evaluation (SPEC §7; seed "Health Status Format" thresholds): success rate < 90 %
 * warning, < 80 % critical; average flush time over `performance.targetTime` (500 ms) a
 * performance alert; failed, abandoned and quarantined files; a pending batch older than
 * twice `maxAge` (the age trigger should have fired). Pure: the caller gathers the numbers.
 */

export type HealthStatus = 'healthy' | 'degraded' | 'unhealthy';
export type Severity = 'none' | 'warning' | 'critical';

export interface HealthIssue {
  type: 'success-rate' | 'performance' | 'failed-batches' | 'abandoned-batches' | 'quarantined-files' | 'stale-pending';
  severity: Exclude<Severity, 'none'>;
  message: string;
}

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
}

export interface HealthSummary {
  status: HealthStatus;
  severity: Severity;
  issues: HealthIssue[];
}

export function evaluateHealth(h: HealthInput): HealthSummary {
  const issues: HealthIssue[] = [];
  const pct = (x: number) => `${(x * 100).toFixed(1)} %`;
  if (h.totalOperations > 0 && h.successRate < 0.8) issues.push({ type: 'success-rate', severity: 'critical', message: `success rate ${pct(h.successRate)} is below 80 %` });
  else if (h.totalOperations > 0 && h.successRate < 0.9) issues.push({ type: 'success-rate', severity: 'warning', message: `success rate ${pct(h.successRate)} is below 90 %` });
  if (h.averageFlushTime > h.targetTime) issues.push({ type: 'performance', severity: 'warning', message: `average flush time ${h.averageFlushTime.toFixed(1)} ms exceeds ${h.targetTime} ms` });
  if (h.failed > 0) issues.push({ type: 'failed-batches', severity: 'warning', message: `${h.failed} failed batch(es) waiting in recovery/` });
  if (h.abandoned > 0) issues.push({ type: 'abandoned-batches', severity: 'critical', message: `${h.abandoned} batch(es) abandoned after the retry limit (recovery/abandoned/)` });
  if (h.quarantined > 0) issues.push({ type: 'quarantined-files', severity: 'warning', message: `${h.quarantined} quarantined file(s) in recovery/errors/` });
  if (h.batchAgeMs > 2 * h.maxAge) issues.push({ type: 'stale-pending', severity: 'warning', message: `oldest pending entry is ${Math.round(h.batchAgeMs / 1000)} s old (maxAge ${h.maxAge} ms)` });
  const severity: Severity = issues.some((i) => i.severity === 'critical') ? 'critical' : issues.length > 0 ? 'warning' : 'none';
  return { status: severity === 'critical' ? 'unhealthy' : severity === 'warning' ? 'degraded' : 'healthy', severity, issues };
}
