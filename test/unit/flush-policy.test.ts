import test from 'ava';
import { planFlush, thresholdCount } from '../../plugins/aggregation/flush-policy.js';

const base = { now: 100_000, batchSize: 50, flushThreshold: 0.9, maxAge: 30_000 };
const times = (n: number, at = 99_000) => new Array<number>(n).fill(at);

test('threshold is ⌈flushThreshold × batchSize⌉ without float noise', (t) => {
  t.is(thresholdCount(50, 0.9), 45);
  t.is(thresholdCount(10, 0.9), 9);
  t.is(thresholdCount(7, 0.5), 4);
  t.is(thresholdCount(3, 0.1), 1);
});

test('below threshold and young: nothing to flush', (t) => {
  t.deepEqual(planFlush({ ...base, pendingAppendedAt: times(44) }), []);
});

test('threshold fires at 45 of 50', (t) => {
  t.deepEqual(planFlush({ ...base, pendingAppendedAt: times(45) }), [{ count: 45, trigger: 'threshold' }]);
});

test('size cuts full batches first; the rest waits below the threshold', (t) => {
  t.deepEqual(planFlush({ ...base, pendingAppendedAt: times(130) }), [
    { count: 50, trigger: 'size' },
    { count: 50, trigger: 'size' },
  ]);
});

test('age fires only when the oldest remaining entry is older than maxAge', (t) => {
  t.deepEqual(planFlush({ ...base, pendingAppendedAt: [70_000, 99_000] }), []);
  t.deepEqual(planFlush({ ...base, pendingAppendedAt: [69_999, 99_000] }), [{ count: 2, trigger: 'age' }]);
});

test('manual flushes everything in chunks of batchSize', (t) => {
  t.deepEqual(planFlush({ ...base, pendingAppendedAt: times(120), manual: true }), [
    { count: 50, trigger: 'manual' },
    { count: 50, trigger: 'manual' },
    { count: 20, trigger: 'manual' },
  ]);
  t.deepEqual(planFlush({ ...base, pendingAppendedAt: [], manual: true }), []);
});

test('batchSize "auto": 64 KiB ÷ average entry size, clamped to 10–500 entries', async (t) => {
  const { autoBatchSize } = await import('../../plugins/aggregation/flush-policy.js');
  t.is(autoBatchSize([]), 50);
  t.is(autoBatchSize([100, 100]), 500, 'small entries: capped at 500');
  t.is(autoBatchSize([1024]), 64);
  t.is(autoBatchSize([4096, 4096]), 16);
  t.is(autoBatchSize([16_384]), 10, 'large entries: at least 10');
});
