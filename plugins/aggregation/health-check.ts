/**
 * The health check (SPEC §7, issue 3 item 4; seed "Health Status Format"): gathers the
 * aggregator's, the recovery folder's and the system's numbers, evaluates them with the pure
 * {@link evaluateHealth}, writes the snapshot to `health/health-<epoch ms>.json` (atomic,
 * durable, dir 0700, file 0600) and raises one alert per warning or critical issue: logged
 * (`warn` / `error`) and passed to the config's optional `onAlert`. An `onAlert` that throws or
 * rejects is logged, never fatal.
 *
 * Run it with the store open (`withStore`), so the pending count and metrics are consistent.
 */
import { recentHookFailures } from './hook-failures.js';
import * as os from 'node:os';
import * as path from 'node:path';
import type { Alert } from '../../src/config/schema.js';
import type { HandlerContext } from '../../src/core/context.js';
import type { OpenStore } from './aggregator.js';
import { evaluateHealth, type HealthIssue, type HealthStatus, type Severity } from './health.js';
import type { StoreLayout } from './layout.js';
import { summarizeMetrics } from './metrics.js';
import { idIndexSample } from './id-index.js';

/** Memory and load figures of the machine; `loadavg` is os.loadavg() (1, 5, 15 minutes). */
export interface SystemSample {
  memory: { usedBytes: number; totalBytes: number };
  loadavg: number[];
}

/** Reads the machine's memory (total − available, bytes) and load average from `node:os`. */
export function sampleSystem(): SystemSample {
  const totalBytes = os.totalmem();
  return { memory: { usedBytes: totalBytes - os.freemem(), totalBytes }, loadavg: os.loadavg() };
}

/**
 * The health snapshot written to `health/health-<timestamp>.json` (seed "Health Status Format").
 * Times in milliseconds, sizes in bytes, `timestamp` epoch ms, `successRate` 0–1, `percent`
 * fields 0–100 (one decimal) and always the share *in use* (memory used, disk used).
 */
export interface HealthReport {
  /** Epoch ms of the check (ctx.now()). */
  timestamp: number;
  status: HealthStatus;
  severity: Severity;
  /** The long-lived host (`serve`); `running: false`, `pid: null`, `uptimeMs: 0`, `runs: 0` for a one-shot call. */
  daemon: { running: boolean; pid: number | null; uptimeMs: number; runs: number };
  aggregator: {
    /** Entries in the journal not yet in a batch. */
    pending: number;
    /** Age of the oldest pending entry, ms (0 when none). */
    batchAgeMs: number;
    /** Batch files written and the entries in them (journal totals). */
    batches: { count: number; entries: number };
    successRate: number;
    /** Mean flush time, ms. */
    averageFlushTime: number;
    /** 99th percentile flush time, ms (histogram bucket bound); null before the first flush. */
    p99FlushTime: number | null;
    failedFlushes: number;
    retryCount: number;
  };
  /** Files in `recovery/` (failed), `recovery/abandoned/`, `recovery/errors/` (quarantined). */
  recovery: { failed: number; abandoned: number; quarantined: number };
  system: {
    memory: { usedBytes: number; totalBytes: number; percent: number };
    /** Of the data root's file system (`bavail`: space an unprivileged process may use); null when statfs failed. */
    disk: { freeBytes: number; totalBytes: number; percent: number } | null;
    loadavg: number[];
  };
  issues: HealthIssue[];
  /** One per warning/critical issue, same order; also logged and sent to `onAlert`. */
  alerts: Alert[];
}

/** Optional facts the caller knows: the daemon's start time (epoch ms) and run count, a system probe (tests). */
export interface HealthCheckExtra {
  daemon?: { startedAt: number; runs: number };
  /** Replaces {@link sampleSystem} (tests pin memory figures with it). */
  system?: () => SystemSample;
}

/** `health/health-<timestamp>.json` for a check at `timestamp` (epoch ms). */
export function healthFile(layout: StoreLayout, timestamp: number): string {
  return path.join(layout.health, `health-${timestamp}.json`);
}

const percent = (part: number, whole: number): number => (whole > 0 ? Math.round((part / whole) * 1000) / 10 : 0);

/**
 * Runs one health check with the store open: builds the {@link HealthReport}, writes it
 * atomically to `health/health-<report.timestamp>.json` (see {@link healthFile}) and raises its
 * alerts (log + `onAlert`). Returns the report.
 *
 * Throws the file port's error (ENOSPC, EACCES…) when the snapshot cannot be written; the
 * alerts have been raised by then, so a full disk is still reported. A statfs failure only
 * makes `system.disk` null (logged).
 */
export function runHealthCheck(ctx: HandlerContext, store: OpenStore, extra: HealthCheckExtra = {}): HealthReport {
  const { layout } = store;
  const timestamp = ctx.now();
  const { pending, batchAgeMs } = store.pendingSummary();
  const metrics = summarizeMetrics(store.metrics);
  const count = (dir: string, suffix: string) => ctx.fs.readdir(dir).filter((n) => n.endsWith(suffix)).length;
  const recovery = {
    failed: count(layout.recovery, '.failed.json'),
    abandoned: count(layout.abandoned, '.abandoned.json'),
    quarantined: ctx.fs.readdir(layout.errors).length,
  };

  const sample = (extra.system ?? sampleSystem)();
  const memory = { usedBytes: sample.memory.usedBytes, totalBytes: sample.memory.totalBytes, percent: percent(sample.memory.usedBytes, sample.memory.totalBytes) };
  let disk: HealthReport['system']['disk'] = null;
  try {
    const s = ctx.fs.statfs(ctx.dataRoot);
    const totalBytes = Number(s.blocks) * Number(s.bsize);
    const freeBytes = Number(s.bavail) * Number(s.bsize);
    disk = { freeBytes, totalBytes, percent: percent(totalBytes - freeBytes, totalBytes) };
  } catch (error) {
    ctx.log.warn('health check: disk space unknown (statfs failed)', { dir: ctx.dataRoot, error: String(error) });
  }

  const summary = evaluateHealth({
    successRate: metrics.successRate,
    totalOperations: metrics.totalOperations,
    averageFlushTime: metrics.averageFlushTime,
    targetTime: ctx.config.performance.targetTime,
    maxTime: ctx.config.performance.maxTime,
    failed: recovery.failed,
    abandoned: recovery.abandoned,
    quarantined: recovery.quarantined,
    batchAgeMs,
    maxAge: ctx.config.maxAge,
    hookFailures: recentHookFailures(ctx),
    idIndex: idIndexSample(ctx.fs, layout.index, store.journal),
    memoryPercent: memory.percent,
    disk: disk ?? undefined,
  });
  const alerts: Alert[] = summary.issues.map((i) => ({ type: i.type, severity: i.severity, message: i.message, timestamp }));
  const totals = store.journal.totals;
  const report: HealthReport = {
    timestamp,
    status: summary.status,
    severity: summary.severity,
    daemon: extra.daemon
      ? { running: true, pid: process.pid, uptimeMs: Math.max(0, timestamp - extra.daemon.startedAt), runs: extra.daemon.runs }
      : { running: false, pid: null, uptimeMs: 0, runs: 0 },
    aggregator: {
      pending,
      batchAgeMs,
      batches: { count: totals.batches, entries: totals.batchEntries },
      successRate: metrics.successRate,
      averageFlushTime: metrics.averageFlushTime,
      p99FlushTime: metrics.p99FlushTime,
      failedFlushes: metrics.failedFlushes,
      retryCount: metrics.retryCount,
    },
    recovery,
    system: { memory, disk, loadavg: sample.loadavg },
    issues: summary.issues,
    alerts,
  };

  raiseAlerts(ctx, alerts);
  ctx.fs.mkdirp(layout.health);
  ctx.fs.writeFileDurable(healthFile(layout, timestamp), JSON.stringify(report, null, 2) + '\n');
  return report;
}

/**
 * Logs each alert (`warn` for warnings, `error` for critical; fields = the alert) and calls
 * `ctx.config.onAlert(alert)` when set. A synchronous throw is caught and logged; a returned
 * promise that rejects is logged when it settles (not awaited: a slow alert sink must not hold
 * the store lock). Never throws.
 */
export function raiseAlerts(ctx: HandlerContext, alerts: readonly Alert[]): void {
  const onAlert = ctx.config.onAlert;
  for (const alert of alerts) {
    if (alert.severity === 'critical') ctx.log.error('health alert', { ...alert });
    else ctx.log.warn('health alert', { ...alert });
    if (!onAlert) continue;
    const failed = (error: unknown) => ctx.log.error('onAlert failed', { alert: alert.type, error: error instanceof Error ? error.message : String(error) });
    try {
      const returned = onAlert({ ...alert }) as unknown;
      if (returned && typeof (returned as PromiseLike<unknown>).then === 'function') {
        (returned as PromiseLike<unknown>).then(undefined, failed);
      }
    } catch (error) {
      failed(error);
    }
  }
}
