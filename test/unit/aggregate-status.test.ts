import test from 'ava';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { aggregate } from '../../plugins/aggregation/handlers/aggregate.js';
import { aggregateStatus } from '../../plugins/aggregation/handlers/aggregate-status.js';
import { rawEntry, withTempStore } from '../helpers/store.js';
import { openJournal } from '../../plugins/aggregation/journal.js';

test('status reports pending entries, their age, batches and metrics; the age trigger fires after maxAge', async (t) => {
  const s = withTempStore(t, { batchSize: 50, maxAge: 30_000 });
  await aggregate.run({ entry: [JSON.stringify([rawEntry(1, s.clock.now() - 5), rawEntry(2, s.clock.now() - 5)])], source: [] }, s.ctx);
  s.clock.advance(10_000);
  const young = await aggregateStatus.run({}, s.ctx);
  t.like(young, { pending: 2, batchAgeMs: 10_000, batches: { count: 0, entries: 0 }, lastFlushAt: null, flushed: [] });
  t.like(young.health, { status: 'healthy', severity: 'none' });
  s.clock.advance(20_001);
  const old = await aggregateStatus.run({}, s.ctx);
  t.is(old.flushed.length, 1);
  t.like(old.flushed[0], { entryCount: 2, trigger: 'age' });
  t.like(old, { pending: 0, batchAgeMs: 0, batches: { count: 1, entries: 2 }, lastFlushAt: s.clock.now() });
  t.like(old.metrics, { flushes: 1, failedFlushes: 0, retryCount: 0, successRate: 1 });
  t.like(old.recovery, { failed: 0, abandoned: 0, errors: 0 });
});

test('status counts failed, abandoned and quarantined files and reports health issues', async (t) => {
  const s = withTempStore(t);
  const rec = path.join(s.dataRoot, 'aggregated/recovery');
  fs.mkdirSync(path.join(rec, 'abandoned'), { recursive: true });
  fs.mkdirSync(path.join(rec, 'errors'), { recursive: true });
  fs.writeFileSync(path.join(rec, 'batch_1700000000000_00000000.failed.json'), '{}');
  fs.writeFileSync(path.join(rec, 'abandoned/batch_1700000000000_00000001.abandoned.json'), '{}');
  fs.writeFileSync(path.join(rec, 'errors/journal-1.bad'), 'x');
  const r = await aggregateStatus.run({}, s.ctx);
  t.deepEqual(r.recovery, { failed: 1, abandoned: 1, errors: 1 });
  t.is(r.health.status, 'unhealthy');
  t.deepEqual(r.health.issues.map((i) => i.type), ['failed-batches', 'abandoned-batches', 'quarantined-files']);
});

test('the call that resumes an interrupted flush removes the temp files of the batches its intent named, and no other', async (t) => {
  const s = withTempStore(t, { batchSize: 50 });
  await aggregate.run({ entry: [JSON.stringify([rawEntry(1, s.clock.now() - 1)])], source: [] }, s.ctx);
  const agg = path.join(s.dataRoot, 'aggregated');
  const named = 'batch_1700000000000_0000abcd';
  const { journal } = openJournal(path.join(agg, 'journal'), path.join(agg, 'recovery/errors'), s.ctx.fs, s.clock.now);
  journal.intent([{ b: named, from: 1, to: 1 }], s.clock.now());
  journal.close();
  // What a process killed during its group write leaves: temp files of the named batch.
  for (const n of ['123', '4294967295']) fs.writeFileSync(path.join(agg, `${named}.json.${n}`), '{"partial');
  fs.writeFileSync(path.join(agg, 'batch_1700000000000_0000ffff.json.77'), 'another batch');
  fs.writeFileSync(path.join(agg, 'metrics.json.99'), 'metrics temp');
  const r = await aggregateStatus.run({}, s.ctx);
  t.is(r.pending, 1); // the named batch was never written: its entry is still pending
  t.deepEqual(fs.readdirSync(agg).filter((n) => /\.\d+$/.test(n)).sort(), ['batch_1700000000000_0000ffff.json.77', 'metrics.json.99']);
});
