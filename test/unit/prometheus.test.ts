import test from 'ava';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { Readable } from 'node:stream';
import { aggregate } from '../../plugins/aggregation/handlers/aggregate.js';
import { aggregateForce } from '../../plugins/aggregation/handlers/aggregate-force.js';
import { aggregateRecover } from '../../plugins/aggregation/handlers/aggregate-recover.js';
import { aggregateStatus, readStatus, type AggregateStatusResult } from '../../plugins/aggregation/handlers/aggregate-status.js';
import { withStore } from '../../plugins/aggregation/aggregator.js';
import { LockedError } from '../../src/core/errors.js';
import { emptyMetrics, summarizeMetrics } from '../../plugins/aggregation/metrics.js';
import { renderPrometheus } from '../../plugins/aggregation/prometheus.js';
import { runHost } from '../../src/bridge/host.js';
import { parseExposition, sampleLines, sampleValue } from '../helpers/prometheus.js';
import { createFaultyFsPort, rawEntry, withTempStore } from '../helpers/store.js';

const P = 'flowforge_aggregation_';

/** A status result with every number chosen by hand. */
function handMadeStatus(): AggregateStatusResult {
  const m = emptyMetrics();
  Object.assign(m, { totalOperations: 10, successfulOperations: 9, acceptedEntries: 40, duplicateEntries: 3, flushes: 4, retryCount: 2, failedFlushes: 1 });
  m.flushesByTrigger = { threshold: 3, manual: 1 };
  m.totalFlushTimeMs = 1_234.5; // 3 ms + 4 ms + 27.5 ms + 1200 ms
  m.maxFlushTimeMs = 1_200;
  m.flushHistogram = [0, 0, 2, 0, 0, 1, 0, 0, 0, 0, 1, 0]; // ≤5 ms: 2, ≤50 ms: 1, ≤2500 ms: 1
  m.recovery = { processed: 5, succeeded: 2, failed: 1, abandoned: 1, quarantined: 3 };
  return {
    dataRoot: '/tmp/x/.flowforge',
    readAt: 1_800_000_000_500,
    pending: 7,
    batchAgeMs: 12_500,
    batches: { count: 4, entries: 33 },
    recovery: { failed: 1, abandoned: 1, errors: 3 },
    metrics: summarizeMetrics(m),
    health: { status: 'unhealthy', severity: 'critical', issues: [{ type: 'abandoned-batches', severity: 'critical', message: 'x' }, { type: 'failed-batches', severity: 'warning', message: 'y' }] },
    lastFlushAt: 1_799_999_990_250,
    flushed: [],
  };
}

test('the exposition of a known status: every sample line, exactly, with HELP and TYPE for each family', async (t) => {
  const { contentType, body } = await renderPrometheus(handMadeStatus());
  t.is(contentType, 'text/plain; version=0.0.4; charset=utf-8');
  t.deepEqual(sampleLines(body), [
    `${P}pending_entries 7`,
    `${P}oldest_pending_age_seconds 12.5`,
    `${P}batches 4`,
    `${P}batch_entries 33`,
    `${P}last_flush_timestamp_seconds 1799999990.25`,
    `${P}flushes_total{trigger="size"} 0`,
    `${P}flushes_total{trigger="threshold"} 3`,
    `${P}flushes_total{trigger="age"} 0`,
    `${P}flushes_total{trigger="manual"} 1`,
    `${P}flush_duration_seconds_bucket{le="0.001"} 0`,
    `${P}flush_duration_seconds_bucket{le="0.002"} 0`,
    `${P}flush_duration_seconds_bucket{le="0.005"} 2`,
    `${P}flush_duration_seconds_bucket{le="0.01"} 2`,
    `${P}flush_duration_seconds_bucket{le="0.025"} 2`,
    `${P}flush_duration_seconds_bucket{le="0.05"} 3`,
    `${P}flush_duration_seconds_bucket{le="0.1"} 3`,
    `${P}flush_duration_seconds_bucket{le="0.25"} 3`,
    `${P}flush_duration_seconds_bucket{le="0.5"} 3`,
    `${P}flush_duration_seconds_bucket{le="1"} 3`,
    `${P}flush_duration_seconds_bucket{le="2.5"} 4`,
    `${P}flush_duration_seconds_bucket{le="+Inf"} 4`,
    `${P}flush_duration_seconds_sum 1.2345`,
    `${P}flush_duration_seconds_count 4`,
    `${P}failed_flushes_total 1`,
    `${P}flush_retries_total 2`,
    `${P}operations_total 10`,
    `${P}operation_failures_total 1`,
    `${P}success_ratio 0.9`,
    `${P}accepted_entries_total 40`,
    `${P}duplicate_entries_total 3`,
    `${P}recovery_outcomes_total{outcome="succeeded"} 2`,
    `${P}recovery_outcomes_total{outcome="failed"} 1`,
    `${P}recovery_outcomes_total{outcome="abandoned"} 1`,
    `${P}recovery_outcomes_total{outcome="quarantined"} 3`,
    `${P}failed_batches 1`,
    `${P}abandoned_batches 1`,
    `${P}quarantined_files 3`,
    `${P}health_status{status="healthy"} 0`,
    `${P}health_status{status="degraded"} 0`,
    `${P}health_status{status="unhealthy"} 1`,
    `${P}health_issues{severity="warning"} 1`,
    `${P}health_issues{severity="critical"} 1`,
    `${P}status_timestamp_seconds 1800000000.5`,
  ]);
  const families = parseExposition(body);
  t.deepEqual(
    [...families.values()].filter((f) => f.type !== 'gauge').map((f) => `${f.name} ${f.type}`),
    [
      `${P}flushes_total counter`,
      `${P}flush_duration_seconds histogram`,
      `${P}failed_flushes_total counter`,
      `${P}flush_retries_total counter`,
      `${P}operations_total counter`,
      `${P}operation_failures_total counter`,
      `${P}accepted_entries_total counter`,
      `${P}duplicate_entries_total counter`,
      `${P}recovery_outcomes_total counter`,
    ],
  );
  t.true([...families.keys()].every((name) => name.startsWith(P)));
  t.true([...families.values()].every((f) => f.help.length > 10));
});

test('a store after 2 threshold flushes and 1 manual flush: counters 2 and 1, histogram count 3, sum from metrics.json in seconds', async (t) => {
  const s = withTempStore(t, { batchSize: 4, flushThreshold: 0.5, maxAge: 3_600_000 });
  const add = (...ids: number[]) => aggregate.run({ entry: [JSON.stringify(ids.map((i) => rawEntry(i, s.clock.now() - 1)))], source: [] }, s.ctx);
  t.like(await add(1, 2), { flushed: [{ entryCount: 2, trigger: 'threshold' }] });
  s.clock.advance(1000);
  t.like(await add(3, 4), { flushed: [{ entryCount: 2, trigger: 'threshold' }] });
  s.clock.advance(1000);
  await add(5);
  t.like(await aggregateForce.run({}, s.ctx), { flushed: [{ entryCount: 1, trigger: 'manual' }], pending: 0 });
  const flushedAt = s.clock.now();
  s.clock.advance(5000);
  await add(6);
  s.clock.advance(2500);

  const status = await aggregateStatus.run({}, s.ctx);
  const { body } = await renderPrometheus(status);
  const families = parseExposition(body);
  const value = (name: string, labels: Record<string, string> = {}) => sampleValue(families, P + name, labels);
  t.is(value('flushes_total', { trigger: 'threshold' }), 2);
  t.is(value('flushes_total', { trigger: 'manual' }), 1);
  t.is(value('flushes_total', { trigger: 'size' }), 0);
  t.is(value('flushes_total', { trigger: 'age' }), 0);
  t.is(value('flush_duration_seconds_count'), 3);
  t.is(value('flush_duration_seconds_bucket', { le: '+Inf' }), 3);
  const saved = JSON.parse(fs.readFileSync(path.join(s.dataRoot, 'aggregated/metrics.json'), 'utf8'));
  t.true(saved.totalFlushTimeMs > 0);
  t.is(value('flush_duration_seconds_sum'), saved.totalFlushTimeMs / 1000);
  t.is(value('pending_entries'), 1);
  t.is(value('oldest_pending_age_seconds'), 2.5);
  t.is(value('batches'), 3);
  t.is(value('batch_entries'), 5);
  t.is(value('last_flush_timestamp_seconds'), flushedAt / 1000);
  t.is(value('operations_total'), 7, '4 appends and 3 flushes');
  t.is(value('operation_failures_total'), 0);
  t.is(value('success_ratio'), 1);
  t.is(value('accepted_entries_total'), 6);
  t.is(value('health_status', { status: 'healthy' }), 1);
  t.is(value('health_status', { status: 'unhealthy' }), 0);
  t.is(value('status_timestamp_seconds'), s.clock.now() / 1000);
});

test('an older metrics.json without the newer counters loads with zeros, and a mangled counter reads 0', async (t) => {
  const s = withTempStore(t);
  fs.mkdirSync(path.join(s.dataRoot, 'aggregated'), { recursive: true });
  fs.writeFileSync(path.join(s.dataRoot, 'aggregated/metrics.json'), JSON.stringify({ version: 1, totalOperations: 5, successfulOperations: 5, flushes: 2, retryCount: -4, flushHistogram: [1, 1] }));
  const status = await aggregateStatus.run({}, s.ctx);
  t.like(status.metrics, { totalOperations: 5, flushes: 2, retryCount: 0, totalFlushTime: 0, flushesByTrigger: { size: 0, threshold: 0, age: 0, manual: 0 } });
  t.deepEqual(status.metrics.recoveryOutcomes, { succeeded: 0, failed: 0, abandoned: 0, quarantined: 0 });
  t.deepEqual(status.metrics.flushHistogram.counts, new Array(12).fill(0));
  const families = parseExposition((await renderPrometheus(status)).body);
  t.is(sampleValue(families, `${P}flush_duration_seconds_count`), 0);
  t.is(sampleValue(families, `${P}recovery_outcomes_total`, { outcome: 'succeeded' }), 0);
  t.is(sampleValue(families, `${P}operations_total`), 5);
});

test('recovery outcomes are totals over every pass, kept in metrics.json', async (t) => {
  const s = withTempStore(t, { batchSize: 2 });
  const failBatches = (op: string, args: unknown[]) => (op === 'writeFileDurable' && /aggregated\/batch_[^/]+\.json$/.test(String(args[0])) ? 'ENOSPC' : undefined);
  s.setFs(createFaultyFsPort(failBatches));
  t.is((await aggregate.run({ entry: [JSON.stringify([rawEntry(1, s.clock.now() - 1), rawEntry(2, s.clock.now() - 1)])], source: [] }, s.ctx)).failed.length, 1);
  t.like(await aggregateRecover.run({}, s.ctx), { failed: 1 }); // the disk is still full
  s.setFs(createFaultyFsPort(() => undefined));
  fs.writeFileSync(path.join(s.dataRoot, 'aggregated/recovery/batch_1700000000000_0000beef.failed.json'), 'not json');
  s.clock.advance(3_600_000);
  t.like(await aggregateRecover.run({}, s.ctx), { succeeded: 1, quarantined: 1 });
  const status = await aggregateStatus.run({}, s.ctx);
  t.deepEqual(status.metrics.recoveryOutcomes, { succeeded: 1, failed: 1, abandoned: 0, quarantined: 1 });
  const families = parseExposition((await renderPrometheus(status)).body);
  t.deepEqual(
    ['succeeded', 'failed', 'abandoned', 'quarantined'].map((outcome) => sampleValue(families, `${P}recovery_outcomes_total`, { outcome })),
    [1, 1, 0, 1],
  );
  t.is(sampleValue(families, `${P}failed_flushes_total`), 1);
  t.is(sampleValue(families, `${P}quarantined_files`), 1);
});

test('a status read that changes no counter leaves metrics.json unwritten', async (t) => {
  const s = withTempStore(t, { maxAge: 3_600_000 });
  await aggregate.run({ entry: [JSON.stringify([rawEntry(1, s.clock.now() - 1)])], source: [] }, s.ctx);
  const port = createFaultyFsPort(() => undefined);
  s.setFs(port);
  await aggregateStatus.run({}, s.ctx);
  t.deepEqual(port.calls.filter((c) => c.file?.includes('metrics.json')).map((c) => c.op), ['readFile']);
});

test('provider-bridge aggregate-status --format=prometheus prints the exposition and nothing else', async (t) => {
  const s = withTempStore(t);
  let stdout = '';
  let stderr = '';
  const code = await runHost(['aggregate-status', '--format=prometheus', `--data-path=${s.dataRoot}`], {
    stdout: { write: (x: string) => (stdout += x) },
    stderr: { write: (x: string) => (stderr += x) },
    stdin: Readable.from([]),
    env: {},
    cwd: s.ctx.cwd,
  });
  t.is(code, 0);
  t.is(stderr, '');
  t.true(stdout.startsWith(`# HELP ${P}pending_entries `));
  const families = parseExposition(stdout);
  t.is(sampleValue(families, `${P}pending_entries`), 0);
  t.is(sampleValue(families, `${P}batches`), 0);
  t.is(sampleValue(families, `${P}last_flush_timestamp_seconds`), 0);
});

test('the read serve uses for a scrape does not apply the age trigger and gives up on a busy lock after its timeout', async (t) => {
  const s = withTempStore(t, { maxAge: 30_000 });
  await aggregate.run({ entry: [JSON.stringify([rawEntry(1, s.clock.now() - 1)])], source: [] }, s.ctx);
  s.clock.advance(60_000);
  const scrape = await readStatus(s.ctx, { applyAgeTrigger: false, lockTimeoutMs: 100 });
  t.like(scrape, { pending: 1, batchAgeMs: 60_000, flushed: [], batches: { count: 0 } });
  await withStore(s.ctx, async () => {
    const error = await t.throwsAsync(readStatus(s.ctx, { applyAgeTrigger: false, lockTimeoutMs: 100 }), { instanceOf: LockedError });
    t.true(error!.message.startsWith('Timed out after 100 ms waiting for the store lock'), error!.message);
  });
  t.like(await aggregateStatus.run({}, s.ctx), { pending: 0, flushed: [{ entryCount: 1, trigger: 'age' }] }, 'the action itself does');
});
