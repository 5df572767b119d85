import test from 'ava';
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { Alert } from '../../src/config/schema.js';
import type { FsPort } from '../../src/core/fs-port.js';
import { createNodeFsPort } from '../../src/core/fs-port.js';
import { withStore } from '../../plugins/aggregation/aggregator.js';
import { aggregate } from '../../plugins/aggregation/handlers/aggregate.js';
import { aggregateHealth } from '../../plugins/aggregation/handlers/aggregate-health.js';
import { runHealthCheck, type HealthReport, type SystemSample } from '../../plugins/aggregation/health-check.js';
import { emptyMetrics } from '../../plugins/aggregation/metrics.js';
import { rawEntry, withTempStore, type TempStore } from '../helpers/store.js';

const GiB = 1024 ** 3;
const MiB = 1024 ** 2;
/** 50 % of 8 GiB in use. */
const calmSystem = (): SystemSample => ({ memory: { usedBytes: 4 * GiB, totalBytes: 8 * GiB }, loadavg: [0.5, 0.25, 0.125] });

/** A port whose statfs reports `freeBytes` of `totalBytes` (block size 4096). */
function withDisk(freeBytes: number, totalBytes: number): FsPort {
  const real = createNodeFsPort();
  return { ...real, statfs: () => ({ type: 0, bsize: 4096, blocks: totalBytes / 4096, bfree: freeBytes / 4096, bavail: freeBytes / 4096, files: 0, ffree: 0 }) };
}

/** Writes metrics.json with `ok` successful operations out of 100 (and `flushMs` average flush time). */
function seedMetrics(s: TempStore, ok: number, flushMs = 2): void {
  const m = { ...emptyMetrics(), totalOperations: 100, successfulOperations: ok, flushes: 10, totalFlushTimeMs: 10 * flushMs, maxFlushTimeMs: flushMs };
  m.flushHistogram[1] = 10;
  fs.mkdirSync(path.join(s.dataRoot, 'aggregated'), { recursive: true });
  fs.writeFileSync(path.join(s.dataRoot, 'aggregated/metrics.json'), JSON.stringify(m));
}

function check(s: TempStore, extra: Parameters<typeof runHealthCheck>[2] = {}): Promise<HealthReport> {
  return withStore(s.ctx, async (store) => runHealthCheck(s.ctx, store, { system: calmSystem, ...extra }));
}

function readSnapshot(s: TempStore, ts: number): unknown {
  return JSON.parse(fs.readFileSync(path.join(s.dataRoot, `health/health-${ts}.json`), 'utf8'));
}

test('a health check writes health/health-<ms>.json in the exact format (0600 in a 0700 folder)', async (t) => {
  // Flush time is real here: thresholds far away keep a loaded machine from adding an issue.
  const s = withTempStore(t, { batchSize: 2, performance: { targetTime: 600_000, maxTime: 600_000 } });
  s.setFs(withDisk(50 * GiB, 100 * GiB));
  const now = s.clock.now();
  await aggregate.run({ entry: [JSON.stringify([rawEntry(1, now - 1000), rawEntry(2, now - 1000), rawEntry(3, now - 1000)])], source: [] }, s.ctx);
  s.clock.advance(4000);
  const report = await check(s, { daemon: { startedAt: now - 6000, runs: 3 } });
  const expected: HealthReport = {
    timestamp: now + 4000,
    status: 'healthy',
    severity: 'none',
    daemon: { running: true, pid: process.pid, uptimeMs: 10_000, runs: 3 },
    aggregator: {
      pending: 1,
      batchAgeMs: 4000,
      batches: { count: 1, entries: 2 },
      successRate: 1,
      averageFlushTime: report.aggregator.averageFlushTime,
      p99FlushTime: report.aggregator.p99FlushTime,
      failedFlushes: 0,
      retryCount: 0,
    },
    recovery: { failed: 0, abandoned: 0, quarantined: 0 },
    system: {
      memory: { usedBytes: 4 * GiB, totalBytes: 8 * GiB, percent: 50 },
      disk: { freeBytes: 50 * GiB, totalBytes: 100 * GiB, percent: 50 },
      loadavg: [0.5, 0.25, 0.125],
    },
    issues: [],
    alerts: [],
  };
  t.deepEqual(report, expected);
  t.true(report.aggregator.averageFlushTime >= 0 && report.aggregator.averageFlushTime < 500);
  t.is(typeof report.aggregator.p99FlushTime, 'number');
  t.deepEqual(readSnapshot(s, now + 4000), expected);
  t.is(fs.statSync(path.join(s.dataRoot, 'health')).mode & 0o777, 0o700);
  t.is(fs.statSync(path.join(s.dataRoot, `health/health-${now + 4000}.json`)).mode & 0o777, 0o600);
  t.deepEqual(fs.readdirSync(path.join(s.dataRoot, 'health')), [`health-${now + 4000}.json`]);
});

test('aggregate-health returns the report it wrote plus its relative path; a one-shot call is no daemon', async (t) => {
  const s = withTempStore(t);
  const r = await aggregateHealth.run({}, s.ctx);
  t.is(r.file, `health/health-${s.clock.now()}.json`);
  const { file, ...report } = r;
  t.deepEqual(readSnapshot(s, s.clock.now()), JSON.parse(JSON.stringify(report)));
  t.deepEqual(r.daemon, { running: false, pid: null, uptimeMs: 0, runs: 0 });
  t.like(r.aggregator, { pending: 0, batchAgeMs: 0, batches: { count: 0, entries: 0 }, successRate: 1, failedFlushes: 0, retryCount: 0 });
  t.true(r.system.memory.totalBytes > 0);
  t.true(r.system.disk !== null && r.system.disk.totalBytes > 0 && r.system.disk.freeBytes <= r.system.disk.totalBytes);
  t.is(r.system.loadavg.length, 3);
  t.true(file.length > 0);
});

test('success rate 0.89 is a warning: status degraded, one alert logged (warn) and passed to onAlert', async (t) => {
  const seen: Alert[] = [];
  const s = withTempStore(t, { onAlert: (a) => void seen.push(a) });
  s.setFs(withDisk(50 * GiB, 100 * GiB));
  seedMetrics(s, 89);
  const r = await check(s);
  const alert: Alert = { type: 'success-rate', severity: 'warning', message: 'success rate 89.0 % is below 90 %', timestamp: s.clock.now() };
  t.is(r.status, 'degraded');
  t.is(r.severity, 'warning');
  t.deepEqual(r.issues, [{ type: 'success-rate', severity: 'warning', message: 'success rate 89.0 % is below 90 %' }]);
  t.deepEqual(r.alerts, [alert]);
  t.deepEqual(seen, [alert]);
  t.deepEqual(
    s.logs.lines.filter((l) => l.msg === 'health alert'),
    [{ level: 'warn', msg: 'health alert', fields: { ...alert } }],
  );
});

test('success rate 0.79 is critical: status unhealthy, alert logged as error and passed to onAlert', async (t) => {
  const seen: Alert[] = [];
  const s = withTempStore(t, { onAlert: (a) => void seen.push(a) });
  s.setFs(withDisk(50 * GiB, 100 * GiB));
  seedMetrics(s, 79);
  const r = await check(s);
  const alert: Alert = { type: 'success-rate', severity: 'critical', message: 'success rate 79.0 % is below 80 %', timestamp: s.clock.now() };
  t.like(r, { status: 'unhealthy', severity: 'critical' });
  t.deepEqual(r.alerts, [alert]);
  t.deepEqual(seen, [alert]);
  t.deepEqual(
    s.logs.lines.filter((l) => l.msg === 'health alert'),
    [{ level: 'error', msg: 'health alert', fields: { ...alert } }],
  );
  t.deepEqual((readSnapshot(s, s.clock.now()) as HealthReport).alerts, [alert]);
});

test('success rate exactly 0.90 is healthy', async (t) => {
  const s = withTempStore(t);
  s.setFs(withDisk(50 * GiB, 100 * GiB));
  seedMetrics(s, 90);
  const r = await check(s);
  t.like(r, { status: 'healthy', severity: 'none', issues: [], alerts: [] });
});

test('memory over 80 %, low disk, slow flushes and recovery files each raise their alert, in order', async (t) => {
  const seen: Alert[] = [];
  const s = withTempStore(t, { onAlert: (a) => void seen.push(a) });
  seedMetrics(s, 100, 600);
  const rec = path.join(s.dataRoot, 'aggregated/recovery');
  fs.mkdirSync(path.join(rec, 'errors'), { recursive: true });
  fs.writeFileSync(path.join(rec, 'errors/journal-1.bad'), 'x');
  s.setFs(withDisk(4 * GiB, 100 * GiB)); // 4 % free
  const r = await check(s, { system: () => ({ memory: { usedBytes: 85, totalBytes: 100 }, loadavg: [1, 1, 1] }) });
  const ts = s.clock.now();
  t.deepEqual(r.alerts, [
    { type: 'performance', severity: 'warning', message: 'average flush time 600.0 ms exceeds 500 ms', timestamp: ts },
    { type: 'quarantined-files', severity: 'warning', message: '1 quarantined file(s) in recovery/errors/', timestamp: ts },
    { type: 'memory', severity: 'warning', message: 'memory use 85.0 % is above 80 %', timestamp: ts },
    { type: 'disk-space', severity: 'warning', message: "only 4.0 % (4096.0 MiB) free on the data root's disk (below 5 %)", timestamp: ts },
  ]);
  t.deepEqual(seen, r.alerts);
  t.deepEqual(r.system.memory, { usedBytes: 85, totalBytes: 100, percent: 85 });
  t.deepEqual(r.system.disk, { freeBytes: 4 * GiB, totalBytes: 100 * GiB, percent: 96 });
  t.is(r.recovery.quarantined, 1);
  t.is(r.status, 'degraded');
});

test('under 100 MiB free and flushes slower than maxTime are critical', async (t) => {
  const s = withTempStore(t);
  seedMetrics(s, 100, 1500);
  s.setFs(withDisk(64 * MiB, 1024 * GiB));
  const r = await check(s);
  t.is(r.status, 'unhealthy');
  t.deepEqual(
    r.issues.map((i) => [i.type, i.severity, i.message]),
    [
      ['performance', 'critical', 'average flush time 1500.0 ms exceeds the maximum 1000 ms'],
      ['disk-space', 'critical', "only 64.0 MiB free on the data root's disk (below 100 MiB)"],
    ],
  );
});

test('memory at exactly 80 % is no alert', async (t) => {
  const s = withTempStore(t);
  s.setFs(withDisk(50 * GiB, 100 * GiB));
  const r = await check(s, { system: () => ({ memory: { usedBytes: 80, totalBytes: 100 }, loadavg: [0, 0, 0] }) });
  t.deepEqual(r.alerts, []);
});

test('an onAlert that throws is logged, and the check still writes its snapshot and returns', async (t) => {
  let calls = 0;
  const s = withTempStore(t, {
    onAlert: () => {
      calls++;
      throw new Error('pager is down');
    },
  });
  s.setFs(withDisk(50 * GiB, 100 * GiB));
  seedMetrics(s, 79);
  const r = await check(s);
  t.is(calls, 1);
  t.is(r.status, 'unhealthy');
  t.true(fs.existsSync(path.join(s.dataRoot, `health/health-${s.clock.now()}.json`)));
  t.deepEqual(
    s.logs.lines.filter((l) => l.msg === 'onAlert failed'),
    [{ level: 'error', msg: 'onAlert failed', fields: { alert: 'success-rate', error: 'pager is down' } }],
  );
});

test('an onAlert that rejects is logged when it settles, never an unhandled rejection', async (t) => {
  const s = withTempStore(t, { onAlert: async () => Promise.reject(new Error('webhook 503')) });
  s.setFs(withDisk(50 * GiB, 100 * GiB));
  seedMetrics(s, 89);
  const r = await aggregateHealth.run({}, s.ctx).catch((e: unknown) => e);
  t.false(r instanceof Error);
  await new Promise((resolve) => setImmediate(resolve));
  t.deepEqual(
    s.logs.lines.filter((l) => l.msg === 'onAlert failed'),
    [{ level: 'error', msg: 'onAlert failed', fields: { alert: 'success-rate', error: 'webhook 503' } }],
  );
});

test('a statfs failure leaves disk null (logged) and the check goes on', async (t) => {
  const s = withTempStore(t);
  s.setFs({
    ...createNodeFsPort(),
    statfs: () => {
      throw Object.assign(new Error('ENOSYS: statfs'), { code: 'ENOSYS' });
    },
  });
  const r = await check(s);
  t.is(r.system.disk, null);
  t.is(r.status, 'healthy');
  t.is(s.logs.lines.filter((l) => l.msg === 'health check: disk space unknown (statfs failed)').length, 1);
});

test('a lost id index is critical in aggregate-status and the health check (a re-import would store its ids twice); shards that may legitimately be missing are not', async (t) => {
  const { aggregateStatus } = await import('../../plugins/aggregation/handlers/aggregate-status.js');
  const { evaluateHealth } = await import('../../plugins/aggregation/health.js');
  const s = withTempStore(t, { batchSize: 50 });
  // 100 entries in one call: two whole batches written straight to files, their ids indexed.
  t.like(await aggregate.run({ entry: [JSON.stringify(Array.from({ length: 100 }, (_, i) => rawEntry(i, s.clock.now() - 1)))], source: [] }, s.ctx), { accepted: 100, pending: 0 });
  t.deepEqual((await aggregateStatus.run({}, s.ctx)).health.issues, []);
  const index = path.join(s.dataRoot, 'aggregated/index');
  for (const name of fs.readdirSync(index)) fs.rmSync(path.join(index, name));
  const expected = {
    type: 'id-index',
    severity: 'critical',
    message: 'the id index has 0 of 256 shard files although 100 stored entries are indexed: a re-import would store the ids of the lost shards a second time (run aggregate-validate --repair, which rebuilds it)',
  };
  t.like((await aggregateStatus.run({}, s.ctx)).health, { status: 'unhealthy', issues: [expected] });
  t.deepEqual((await aggregateHealth.run({}, s.ctx)).issues, [expected]);
  // The pure rule: 255 shards for 5,000 indexed entries is a lost shard; for 4,999 it may be chance.
  const base = { successRate: 1, totalOperations: 1, averageFlushTime: 1, targetTime: 500, failed: 0, abandoned: 0, quarantined: 0, batchAgeMs: 0, maxAge: 30_000 };
  t.is(evaluateHealth({ ...base, idIndex: { shards: 255, indexedEntries: 5000 } }).issues[0]?.type, 'id-index');
  t.deepEqual(evaluateHealth({ ...base, idIndex: { shards: 255, indexedEntries: 4999 } }).issues, []);
  t.deepEqual(evaluateHealth({ ...base, idIndex: { shards: 0, indexedEntries: 0 } }).issues, []);
});
