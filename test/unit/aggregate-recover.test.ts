import test from 'ava';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { aggregate } from '../../plugins/aggregation/handlers/aggregate.js';
import { aggregateRecover } from '../../plugins/aggregation/handlers/aggregate-recover.js';
import { planRecovery, nextRetryAt, RECOVERY_BASE_DELAY_MS } from '../../plugins/aggregation/recovery.js';
import { UsageError } from '../../src/core/errors.js';
import { createFaultyFsPort, rawEntry, withTempStore } from '../helpers/store.js';

const failBatches = (op: string, args: unknown[]) => (op === 'writeFileDurable' && /aggregated\/batch_[^/]+\.json$/.test(String(args[0])) ? 'ENOSPC' : undefined);

async function parkOne(s: ReturnType<typeof withTempStore>) {
  s.setFs(createFaultyFsPort(failBatches));
  const r = await aggregate.run({ entry: [JSON.stringify([rawEntry(1, s.clock.now() - 1), rawEntry(2, s.clock.now() - 1)])], source: [] }, s.ctx);
  return r.failed[0]!;
}

test('a parked batch is recovered as a batch file with recovered: true and the failed file removed', async (t) => {
  const s = withTempStore(t, { batchSize: 2 });
  const parked = await parkOne(s);
  s.setFs(createFaultyFsPort(() => undefined));
  const r = await aggregateRecover.run({}, s.ctx);
  t.like(r, { processed: 1, succeeded: 1, failed: 0, abandoned: 0, quarantined: 0 });
  t.false(fs.existsSync(path.join(s.dataRoot, parked.file)));
  const batches = s.batches();
  t.is(batches.length, 1);
  t.is(batches[0]!.batchId, parked.batchId);
  t.true(batches[0]!.recovered);
  t.deepEqual(batches[0]!.entries.map((e) => e.entryId), ['id-1', 'id-2']);
  // The recovered batch counts in status, once, even if the pass is recorded again.
  const { aggregateStatus } = await import('../../plugins/aggregation/handlers/aggregate-status.js');
  t.like((await aggregateStatus.run({}, s.ctx)).batches, { count: 1, entries: 2 });
  t.like(await aggregateRecover.run({}, s.ctx), { processed: 0 });
  t.like((await aggregateStatus.run({}, s.ctx)).batches, { count: 1, entries: 2 });
});

test('failing retries back off, then the batch is abandoned after batchRetryLimit', async (t) => {
  const s = withTempStore(t, { batchSize: 2, recovery: { batchRetryLimit: 2 } });
  const parked = await parkOne(s);
  const first = await aggregateRecover.run({}, s.ctx);
  t.like(first, { processed: 1, failed: 1, abandoned: 0 });
  const doc = JSON.parse(fs.readFileSync(path.join(s.dataRoot, parked.file), 'utf8'));
  t.is(doc.retryCount, 1);
  t.is(doc.lastRetryAt, s.clock.now());
  t.true(doc.nextRetryAt >= s.clock.now() + RECOVERY_BASE_DELAY_MS / 2);
  const notDue = await aggregateRecover.run({}, s.ctx);
  t.like(notDue, { processed: 0, failed: 0 });
  t.is(notDue.waiting.length, 1);
  s.clock.advance(2 * RECOVERY_BASE_DELAY_MS);
  const second = await aggregateRecover.run({}, s.ctx);
  t.like(second, { processed: 1, failed: 0, abandoned: 1 });
  t.true(fs.existsSync(path.join(s.dataRoot, `aggregated/recovery/abandoned/${parked.batchId}.abandoned.json`)));
  t.false(fs.existsSync(path.join(s.dataRoot, parked.file)));
});

test('a failed batch that was already written is cleaned up, not written twice; junk is quarantined', async (t) => {
  const s = withTempStore(t, { batchSize: 2 });
  const parked = await parkOne(s);
  s.setFs(createFaultyFsPort(() => undefined));
  const doc = JSON.parse(fs.readFileSync(path.join(s.dataRoot, parked.file), 'utf8'));
  const { makeBatch } = await import('../../plugins/aggregation/batch-store.js');
  fs.writeFileSync(path.join(s.dataRoot, `aggregated/${parked.batchId}.json`), JSON.stringify(makeBatch(parked.batchId, 1, doc.entries)));
  fs.writeFileSync(path.join(s.dataRoot, 'aggregated/recovery/batch_1700000000000_0000beef.failed.json'), '');
  const r = await aggregateRecover.run({ 'batch-id': undefined }, s.ctx);
  t.like(r, { processed: 1, succeeded: 1, quarantined: 1 });
  const batches = s.batches();
  t.is(batches.length, 1);
  t.false(batches[0]!.recovered, 'the existing file was kept as it was');
  t.is(fs.readdirSync(path.join(s.dataRoot, 'aggregated/recovery/errors')).length, 1);
});

test('--batch-id must be a plain batch id, never a path', async (t) => {
  const s = withTempStore(t);
  const error = await t.throwsAsync(aggregateRecover.run({ 'batch-id': '../../etc/passwd' }, s.ctx), { instanceOf: UsageError });
  t.is(error?.exitCode, 2);
  t.false(fs.existsSync(s.dataRoot));
});

test('--batch-id naming no failed batch is a usage error saying so (it ran a pass over nothing and exited 0)', async (t) => {
  const s = withTempStore(t, { batchSize: 2, recovery: { batchRetryLimit: 1 } });
  const missing = 'batch_1700000000000_0000dead';
  const error = await t.throwsAsync(aggregateRecover.run({ 'batch-id': missing }, s.ctx), { instanceOf: UsageError });
  t.is(error!.message, `no failed batch ${missing} in aggregated/recovery/ (aggregate-status counts the failed batches; their ids are the file names there)`);
  t.deepEqual(error!.details, [{ path: '--batch-id', message: 'no such failed batch', value: missing }]);
  // An abandoned one is named as such.
  const parked = await parkOne(s);
  t.like(await aggregateRecover.run({ 'batch-id': parked.batchId }, s.ctx), { processed: 1, abandoned: 1 });
  const abandoned = await t.throwsAsync(aggregateRecover.run({ 'batch-id': parked.batchId }, s.ctx), { instanceOf: UsageError });
  t.is(abandoned!.message, `${parked.batchId} is not a failed batch: it was abandoned after batchRetryLimit attempts, aggregated/recovery/abandoned/${parked.batchId}.abandoned.json`);
});

test('planRecovery orders oldest first then by retry count, and clamps absurd due times', (t) => {
  const now = 10_000_000;
  const plan = planRecovery(
    [
      { batchId: 'b', failedAt: 2, retryCount: 0, nextRetryAt: 0 },
      { batchId: 'a', failedAt: 1, retryCount: 3, nextRetryAt: 0 },
      { batchId: 'c', failedAt: 1, retryCount: 1, nextRetryAt: now + 1000 },
      { batchId: 'd', failedAt: 0, retryCount: 0, nextRetryAt: now + 10 ** 12 },
    ],
    now,
  );
  t.deepEqual(plan, [
    { kind: 'retry', batchId: 'd' },
    { kind: 'wait', batchId: 'c', until: now + 1000 },
    { kind: 'retry', batchId: 'a' },
    { kind: 'retry', batchId: 'b' },
  ]);
  t.is(nextRetryAt(0, 1, 0.5), RECOVERY_BASE_DELAY_MS);
  t.is(nextRetryAt(0, 3, 0.5), 4 * RECOVERY_BASE_DELAY_MS);
});
