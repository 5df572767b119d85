import test from 'ava';
import { aggregate } from '../../plugins/aggregation/handlers/aggregate.js';
import { aggregateForce } from '../../plugins/aggregation/handlers/aggregate-force.js';
import { FlushError } from '../../src/core/errors.js';
import { createFaultyFsPort, rawEntry, withTempStore } from '../helpers/store.js';

const add = (s: ReturnType<typeof withTempStore>, ids: number[]) =>
  aggregate.run({ entry: [JSON.stringify(ids.map((i) => rawEntry(i, s.clock.now() - 1)))], source: [] }, s.ctx);

test('force flushes everything pending with trigger manual, in chunks of batchSize', async (t) => {
  const s = withTempStore(t, { batchSize: 4, flushThreshold: 1 });
  await add(s, [1, 2, 3]);
  await add(s, [4, 5, 6]); // 6 pending: one size batch of 4 was cut, 2 left
  const r = await aggregateForce.run({}, s.ctx);
  t.deepEqual(r.flushed.map((f) => [f.entryCount, f.trigger]), [[2, 'manual']]);
  t.is(r.pending, 0);
  t.deepEqual(s.batches().map((b) => b.entryCount).sort(), [2, 4]);
  t.deepEqual((await aggregateForce.run({}, s.ctx)).flushed, []);
});

test('force throws FlushError (exit 1) when a batch cannot be written; the entries are parked, not lost', async (t) => {
  const s = withTempStore(t);
  await add(s, [1, 2]);
  s.setFs(createFaultyFsPort((op, args) => (op === 'writeFileDurable' && /aggregated\/batch_[^/]+\.json$/.test(String(args[0])) ? 'EROFS' : undefined)));
  const error = await t.throwsAsync(aggregateForce.run({}, s.ctx), { instanceOf: FlushError });
  t.is(error?.exitCode, 1);
  t.is(error?.details.length, 1);
  t.regex(error?.details[0]?.path ?? '', /^aggregated\/recovery\/batch_\d{13}_[0-9a-f]{8}\.failed\.json$/);
});
